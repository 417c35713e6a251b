"""Neural networks of the engine: the motion autoencoder and the text-to-motion generators.

Each network has one ``Config`` dataclass (saved whole in a checkpoint) with named presets
(``tiny()`` for tests, ``small()`` the shipped size, ``large()`` the paper size) and a
``forward`` that returns its prediction, never a loss.
"""
