"""A Keras callback that interrupts a fit after a given epoch, as a kill would (for the resumption tests)."""

import keras


class InterruptAfter(keras.callbacks.Callback):
    """Raise ``KeyboardInterrupt`` at the end of epoch ``epochs`` (1-based)."""

    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:
            raise KeyboardInterrupt
