"""Checkpoints on disk and on the Hub: the folder and its config (``checkpoint``), sharded
safetensors (``weights``), local-or-Hub resolution (``hub``), what a checkpoint learned
(``knowledge``, reported by ``info``) and the published MoLingo release's download and
conversion (``molingo_download``, ``molingo_release``).
"""
