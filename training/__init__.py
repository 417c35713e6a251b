"""Kinetext training: data sets, trainers, evaluator and checkpoint export.

Builds on ``engine`` (absolute imports, ``from engine.motion.features import ...``); ``engine``
never imports from here. The command line is ``python -m training`` (``training.cli``).
"""
