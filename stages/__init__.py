"""The pipeline's entry points, one per DVC stage: read params, call crypto_forecast, write outputs."""

# `python -m stages.<name>` runs this first, before the stage imports pandas, NumPy or
# TensorFlow (seconds). Ctrl-C in those seconds would print a KeyboardInterrupt traceback
# from deep inside an import; instead it ends with the one line every stage gives. Nothing
# has been read or written yet. `run_stage` puts Python's own handler back once the stage
# starts, where Ctrl-C is handled (temp files removed, the MLflow run ended).
import sys as _sys

if _sys.argv[:1] == ["-m"]:  # only for `python -m stages.x`, never when a test imports stages
    import signal as _signal

    def _interrupted_while_starting(signum: int, frame: object) -> None:
        import time

        _sys.stderr.write(f"{time.strftime('%H:%M:%S')} stages ERROR interrupted while "
                          "starting; nothing was read or written\n")
        _sys.stderr.flush()
        raise SystemExit(130)

    _signal.signal(_signal.SIGINT, _interrupted_while_starting)
    _signal.signal(_signal.SIGTERM, _interrupted_while_starting)
