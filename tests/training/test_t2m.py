"""The public T2M evaluator loader, on weights and GloVe files written here in its layout."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from engine.errors import MotionError
from engine.motion.features import Normalizer
from training.evaluation.t2m import (
    POS_TAGS,
    MotionEncoderBiGRUCo,
    MovementConvEncoder,
    TextEncoderBiGRUCo,
    WordVectors,
    load_t2m_evaluator,
    read_plain_pickle,
)

WORDS = ["sos", "eos", "unk", "a", "person", "walk", "forward", "slowly"]
RAN: list[str] = []


def _record(text: str) -> str:
    RAN.append(text)
    return text


class Payload:
    """Unpickling this would call ``_record``: proof that code ran."""

    def __reduce__(self):
        return (_record, ("code ran",))


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """A folder laid out like the public release, a data root, and the modules it holds."""
    root = tmp_path_factory.mktemp("t2m")
    torch.manual_seed(0)
    modules = {
        "text_encoder": TextEncoderBiGRUCo(),
        "movement_encoder": MovementConvEncoder(),
        "motion_encoder": MotionEncoderBiGRUCo(),
    }
    (root / "text_mot_match" / "model").mkdir(parents=True)
    state = {name: m.state_dict() for name, m in modules.items()}
    torch.save({**state, "epoch": 7, "total_it": 1000}, root / "text_mot_match/model/finest.tar")
    glove = root / "glove"
    glove.mkdir()
    np.save(glove / "our_vab_data.npy", np.random.default_rng(0).normal(size=(8, 300)))
    (glove / "our_vab_words.pkl").write_bytes(pickle.dumps(WORDS))
    (glove / "our_vab_idx.pkl").write_bytes(pickle.dumps({w: i for i, w in enumerate(WORDS)}))
    data = root / "data"
    (data / "texts").mkdir(parents=True)
    (data / "texts" / "000001.txt").write_text(
        "a person walks forward slowly#a/DET person/NOUN walk/VERB forward/ADV slowly/ADV#0.0#0.0\n"
        "a person waves#a/DET person/NOUN wave/VERB#0.0#0.0\n",
        encoding="utf-8",
    )
    Normalizer(np.zeros(263), np.full(263, 2.0)).save(data)
    return root, data, modules


def test_loads_and_matches_the_written_modules(release):
    root, data, modules = release
    evaluator = load_t2m_evaluator(root, data)
    assert evaluator.normalizer.std[0] == 2.0  # no meta/: the data set's statistics
    x = torch.randn(2, 48, 263)
    with torch.no_grad():
        for m in modules.values():
            m.eval()
        movements = modules["movement_encoder"](x[..., :-4])
        expected = modules["motion_encoder"](movements, torch.tensor([12, 10]))
    got = evaluator.embed_motion(x.numpy(), [48, 40])
    assert got.shape == (2, 512)
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-5)
    text = evaluator.embed_text(["a person walks forward slowly", "a person waves"])
    assert text.shape == (2, 512) and np.isfinite(text).all()
    with pytest.raises(MotionError, match="no POS-tagged tokens"):
        evaluator.embed_text(["an unseen caption"])


def test_word_tagging_follows_the_reference_rules(release):
    root, _, _ = release
    words = WordVectors.load(root / "glove")
    vec, pos = words.token("walk/VERB")
    assert POS_TAGS[int(pos.argmax())] == "Act_VIP"
    np.testing.assert_allclose(vec, words.vectors[WORDS.index("walk")])
    vec, pos = words.token("wave/VERB")  # not in the vocabulary
    assert POS_TAGS[int(pos.argmax())] == "OTHER"
    np.testing.assert_allclose(vec, words.vectors[WORDS.index("unk")])
    assert POS_TAGS[int(words.token("person/NOUN")[1].argmax())] == "NOUN"
    embedded, onehots, length = words.sentence(["a/DET"] * 25)
    assert embedded.shape == (22, 300) and onehots.shape == (22, 15) and length == 22


def test_checkpoint_with_code_is_refused(tmp_path, release):
    root, data, modules = release
    bad = tmp_path / "bad"
    (bad / "glove").mkdir(parents=True)
    for name in ("our_vab_data.npy", "our_vab_words.pkl", "our_vab_idx.pkl"):
        (bad / "glove" / name).write_bytes((root / "glove" / name).read_bytes())
    state = {name: m.state_dict() for name, m in modules.items()}
    torch.save({**state, "extra": Payload()}, bad / "finest.tar")
    with pytest.raises(MotionError, match="refused or unreadable"):
        load_t2m_evaluator(bad, data)
    assert RAN == []


def test_word_pickles_with_code_or_wrong_types_are_refused(tmp_path):
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps([Payload()]))
    with pytest.raises(MotionError, match="plain-data"):
        read_plain_pickle(evil)
    assert RAN == []
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"walk": 3, "run": [1, "x"]}))
    assert read_plain_pickle(plain) == {"walk": 3, "run": [1, "x"]}


def test_missing_state_dict_is_reported(tmp_path, release):
    _, data, modules = release
    torch.save({"text_encoder": modules["text_encoder"].state_dict()}, tmp_path / "finest.tar")
    with pytest.raises(MotionError, match="expected state dicts"):
        load_t2m_evaluator(tmp_path, data)
