"""Which Keras backend runs the network (JAX or TensorFlow): chosen once per process, before
Keras is first imported. Every Keras import in the package goes through `keras_module()`.

Keras reads `KERAS_BACKEND` once, when it is first imported, and cannot switch afterwards.
So `use_backend` sets it, and refuses (one clear error, never silently the other backend)
when Keras is already loaded with a different one.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Literal, get_args

from crypto_forecast.errors import ConfigError

log = logging.getLogger(__name__)

Backend = Literal["jax", "tensorflow"]
BACKENDS: tuple[str, ...] = get_args(Backend)
# By bench/speed.py on this project's 2-core CPU: same validation loss, bit-identical weights
# run to run, ~2-3x shorter epochs, a third of the memory (README "Performance").
DEFAULT_BACKEND: Backend = "jax"
# The package each backend needs beside Keras.
_PACKAGE = {"jax": "jax", "tensorflow": "tensorflow"}


def active_backend() -> str | None:
    """The backend of the Keras already imported in this process, or None if none is."""
    keras = sys.modules.get("keras")
    if keras is None:
        return None
    return str(keras.backend.backend())


def use_backend(name: Backend) -> None:
    """Make `name` this process's Keras backend; call before anything imports Keras."""
    if name not in BACKENDS:
        raise ConfigError(f"train.backend: {name!r} is not a Keras backend this pipeline runs "
                          f"— use one of {', '.join(BACKENDS)}")
    current = active_backend()
    if current is not None:
        if current != name:
            raise ConfigError(
                f"train.backend is {name!r} but Keras is already imported in this process with "
                f"the {current!r} backend — start a fresh process (or set KERAS_BACKEND={name} "
                "before importing Keras)")
        return
    if importlib.util.find_spec(_PACKAGE[name]) is None:
        other = next(b for b in BACKENDS if b != name)
        raise ConfigError(f"train.backend is {name!r} but {_PACKAGE[name]} is not installed — "
                          f"run `make venv` (installs the lock) or set train.backend: {other}")
    before = os.environ.get("KERAS_BACKEND")
    if before and before != name:
        log.info("KERAS_BACKEND=%s in the environment: train.backend (%s) decides instead",
                 before, name)
    os.environ["KERAS_BACKEND"] = name
    if name == "tensorflow":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    else:
        # JAX looks for a TPU at start and logs (INFO) that it found none: noise in DVC logs.
        logging.getLogger("jax._src.xla_bridge").setLevel(logging.WARNING)


def keras_module() -> ModuleType:
    """`keras`, on the backend `use_backend` chose (Keras's own default if none was chosen)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    if keras.backend.backend() == "jax" and "tensorflow" not in sys.modules:
        _hide_tensorflow_from_keras()
    module: ModuleType = keras
    return module


def _hide_tensorflow_from_keras() -> None:
    """On JAX, stop Keras importing TensorFlow just to ask `isinstance(x, tf.TensorShape)`.

    Keras's seeding and its `.keras` serialisation check TensorFlow types whenever TensorFlow
    is installed, importing it (~3 s and ~500 MB here) in a process that never makes a
    TensorFlow object; with it marked absent those checks are simply false, as they would be
    anyway. Nothing on the JAX path needs TensorFlow (tests/model/test_backends.py checks that
    a JAX training, save and MLflow log never import it).
    """
    try:
        from keras.src.utils import module_utils

        lazy = module_utils.tensorflow
        if lazy.module is None:
            lazy._available = False
    except (ImportError, AttributeError):  # another Keras layout: pay for the import instead
        log.debug("could not keep TensorFlow out of a JAX process")


def _persistent_compilation_cache() -> None:
    """Keep JAX's compiled steps on disk: a later training of the same shapes skips the
    compile (the first epoch, ~2-15 s here, drops to ~1 s), with bit-identical weights
    (tests/model/test_backends.py trains twice, the second from the cache).

    JAX's own settings win: JAX_COMPILATION_CACHE_DIR moves it,
    JAX_ENABLE_COMPILATION_CACHE=false turns it off. Entries are keyed by the computation,
    JAX version and flags, so a stale one is never used.
    """
    import jax

    if not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        jax.config.update("jax_compilation_cache_dir",  # type: ignore[no-untyped-call]
                          str(home / "crypto-forecast" / "jax"))
    # Every step, however quick it compiled (default: only those over 1 s).
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)  # type: ignore[no-untyped-call]


def configure(seed: int) -> ModuleType:
    """Seeds and deterministic execution on the active backend; returns `keras`.

    The same params and data then give bit-identical weights run to run on either backend
    (not across backends: each draws its initial weights and shuffles with its own RNG).
    """
    keras = keras_module()
    if keras.backend.backend() == "jax":
        _persistent_compilation_cache()
    keras.utils.set_random_seed(seed)
    keras.utils.disable_interactive_logging()  # no progress bars in DVC logs
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
        try:
            # One op at a time, each using every core: on a 2-core machine, independent ops
            # side by side only oversubscribe it. (Thread counts did not change the weights.)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TensorFlow already running in this process: keep its setting
            log.debug("TensorFlow already initialised; inter-op threads left as they are")
    return keras
