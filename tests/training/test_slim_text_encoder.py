"""training/recipes/slim_text_encoder.py through its command line: a slim (int8) copy restores
to the encoder's vectors for the captions it was made from, and reads others as blank, which
training refuses (``check_reads``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from engine.errors import MotionError
from engine.text_encoder import TextEncoderConfig, build_text_encoder, check_reads

ROOT = Path(__file__).resolve().parents[2]
WORDS = ["<pad>", "<unk>", "<s>", "</s>", "a", "person", "walks", "jumps", "crawls", "forward"]


def _tiny_bert(folder: Path) -> None:
    """A random BERT (matrices large enough for the int8 path) with a word-level tokenizer."""
    import transformers as tf
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    torch.manual_seed(0)
    config = tf.BertConfig(vocab_size=len(WORDS), hidden_size=64, num_hidden_layers=1,
                           num_attention_heads=2, intermediate_size=128)  # fmt: skip
    tf.BertModel(config).save_pretrained(folder)
    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", special_tokens=[("<s>", 2), ("</s>", 3)]
    )
    tf.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", unk_token="<unk>", bos_token="<s>",
        eos_token="</s>",
    ).save_pretrained(folder)  # fmt: skip


def _recipe(*args: str | Path) -> None:
    script = ROOT / "training" / "recipes" / "slim_text_encoder.py"
    subprocess.run([sys.executable, str(script), *map(str, args)], check=True, cwd=ROOT,
                   capture_output=True)  # fmt: skip


@pytest.mark.parametrize("int8", [False, True])
def test_slim_copy_reads_its_captions_and_is_refused_for_others(tmp_path, int8):
    _tiny_bert(tmp_path / "full")
    (tmp_path / "texts").mkdir()
    (tmp_path / "texts" / "000001.txt").write_text("a person walks forward#a/DET#0.0#0.0\n")
    _recipe("slim", tmp_path / "full", tmp_path / "slim", "--texts", tmp_path / "texts",
            *(["--int8"] if int8 else []))  # fmt: skip
    _recipe("restore", tmp_path / "slim", tmp_path / "restored")
    full = build_text_encoder(TextEncoderConfig(name=str(tmp_path / "full")))
    slim = build_text_encoder(TextEncoderConfig(name=str(tmp_path / "restored")))
    seen = ["a person walks forward"]
    cosine = torch.cosine_similarity(full.pooled_many(seen), slim.pooled_many(seen)).item()
    assert cosine > (0.999 if int8 else 0.99999)
    check_reads(slim, seen, "training")
    assert slim.blank_tokens(["a person jumps", "a person crawls"]) == ["crawls", "jumps"]
    with pytest.raises(MotionError, match="no embedding for 2 token"):
        check_reads(slim, seen + ["a person jumps", "a person crawls"], "training on new data")
