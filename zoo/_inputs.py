"""What a Keras model takes: input shape, dtype and value range, checked before predicting.

One implementation, :mod:`ensemble.kinds` (``check_keras_input``,
``check_input_array``, ``keras_input_spec``), used by the ensembles' Keras
members and, through these names, by the zoo. A model whose input is
``uint8`` (every zoo image model: ``Rescaling`` is inside) takes integers
0-255 and refuses floats, booleans and values out of range, rather than
casting them silently; a float-input model takes numbers and refuses NaN or
infinity; a string-input model takes raw text.
"""

from __future__ import annotations

from ensemble.kinds import check_input_array as check_array
from ensemble.kinds import check_keras_input as check_input
from ensemble.kinds import keras_input_spec as input_spec

__all__ = ["check_array", "check_input", "input_spec"]
