"""The network: the lecture's stacked LSTM in Keras (build, train) and its NumPy forward pass."""
