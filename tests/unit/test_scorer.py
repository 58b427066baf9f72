"""Loss scoring on a tiny Llama built in the test: token-budget batches equal one-at-a-time losses."""

from __future__ import annotations

import math

import pytest

from instructlake.scoring.scorer import CPU_TOKEN_BUDGET, ScoreInput, TransformersScorer, pack, render_turns

MULTI = [("user", "hello"), ("assistant", "hello world"), ("user", "write a poem about the sea"),
         ("assistant", "the sea the sea"), ("user", "add two numbers"), ("assistant", "python function")]

ITEMS = [
    ScoreInput.from_turns(MULTI, "all"),
    ScoreInput(render_turns([("user", "write a poem about the sea")]) + "Assistant:", "the sea the sea world"),
    ScoreInput(render_turns([("user", "hello")]) + "Assistant:", "hello world"),
    ScoreInput("", "add two numbers"),
    ScoreInput(render_turns([("user", "python function add two numbers"), ("assistant", "add"),
                             ("user", "translate good morning into french")]) + "Assistant:",
               "good morning french answer json the sea"),
    ScoreInput(render_turns([("user", "tag this instruction")]) + "Assistant:", "tag"),
]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from tests.tiny_models import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny-llama-score"), seed=3)


def direct_loss(scorer, seq, mask):
    """The mean loss of the masked tokens of seq, from one unpadded forward pass."""
    import torch

    with torch.no_grad():
        logits = scorer.lm(input_ids=torch.tensor([seq])).logits[0].float()
    logp = torch.log_softmax(logits, -1)
    vals = [-float(logp[t - 1, seq[t]]) for t in range(1, len(seq)) if mask[t]]
    return sum(vals) / len(vals)


def test_pack_respects_the_budget_and_sorts():
    lengths = [5, 30, 7, 12, 6, 100]
    batches = pack(lengths, 40)
    assert sorted(i for b in batches for i in b) == list(range(6))
    for b in batches:
        assert len(b) == 1 or max(lengths[i] for i in b) * len(b) <= 40
    assert batches[-1] == [5]  # longer than the budget: alone


@pytest.mark.parametrize("budget", [1, 24, 64, 10_000])
def test_batched_scores_equal_one_at_a_time(model_dir, budget):
    scorer = TransformersScorer("tiny", str(model_dir), max_length=64, token_budget=budget, device="cpu")
    got = scorer.score(ITEMS)
    for item, s in zip(ITEMS, got, strict=True):
        cond, cmask, uncond, umask, trunc = scorer.sequences(item)
        assert not trunc and s.error is None
        assert math.isclose(s.loss_cond, direct_loss(scorer, cond, cmask), abs_tol=1e-4)
        assert math.isclose(s.loss_uncond, direct_loss(scorer, uncond, umask), abs_tol=1e-4)
        assert math.isclose(s.ifd, s.loss_cond / s.loss_uncond) and s.n_tokens == sum(cmask)
    assert scorer.tokens_padded >= scorer.tokens_scored > 0


def test_token_budget_by_device(model_dir):
    from instructlake.config import ConfigError, ScoringSettings

    assert TransformersScorer("tiny", str(model_dir), max_length=64, device="cpu").token_budget == 2048 == CPU_TOKEN_BUDGET
    assert TransformersScorer("tiny", str(model_dir), max_length=64, token_budget=96, device="cpu").token_budget == 96
    assert ScoringSettings().token_budget == 0
    with pytest.raises(ConfigError, match="token_budget"):
        ScoringSettings(token_budget=-1)


def test_token_budget_pads_less_than_row_batches(model_dir):
    big = ITEMS * 8
    tight = TransformersScorer("tiny", str(model_dir), max_length=64, token_budget=96, device="cpu")
    tight.score(big)
    assert tight.tokens_padded / tight.tokens_scored < 1.15  # sorted by length: little padding


def test_truncation_keeps_the_response_start_and_is_recorded(model_dir):
    scorer = TransformersScorer("tiny", str(model_dir), max_length=8, device="cpu")
    long = ScoreInput("user : hello world " * 5, "the sea " * 10)
    [s] = scorer.score([long])
    cond, cmask, uncond, _, trunc = scorer.sequences(long)
    cs = cmask.index(True)
    assert s.truncated and trunc and len(cond) == 8 and all(cmask[cs:])
    # 7 tokens of room after the BOS: the context keeps its last 3 (half the room), the response its first 4
    assert cs == 1 + 3 and s.n_tokens == 4 and len(uncond) == 1 + 4
    assert cond[1:cs] == scorer._encode(long.context)[-3:] and cond[cs:] == scorer._encode(long.response)[:4]
    [short] = scorer.score([ScoreInput("hello", "world")])
    assert not short.truncated
    [empty] = scorer.score([ScoreInput("hello", "")])
    assert empty.error and empty.loss_cond is None and empty.ifd is None


def test_from_turns_renders_the_whole_conversation_and_marks_assistant_turns():
    for which in ("last", "all"):
        item = ScoreInput.from_turns(MULTI + [("user", "thanks")], which)
        text = item.context + item.response + "".join(t for t, _ in item.more)
        assert render_turns(MULTI).startswith(text) and text.endswith("python function")
    last = ScoreInput.from_turns(MULTI, "last")
    assert last.response == " python function" and not last.more
    every = ScoreInput.from_turns(MULTI, "all")
    assert every.response == " hello world"
    assert [t for t, s in every.more if s] == [" the sea the sea", " python function"]
    assert ScoreInput.from_turns([("user", "no answer")]).response == ""


def test_all_turns_scores_every_assistant_token(model_dir):
    scorer = TransformersScorer("tiny", str(model_dir), max_length=64, device="cpu")
    every, last = scorer.score([ScoreInput.from_turns(MULTI, "all"), ScoreInput.from_turns(MULTI, "last")])
    cond, cmask, uncond, umask, _ = scorer.sequences(ScoreInput.from_turns(MULTI, "all"))
    responses = sum((scorer._encode(" " + c) for r, c in MULTI if r == "assistant"), [])
    assert [t for t, m in zip(cond, cmask, strict=True) if m] == responses and uncond[len(scorer.bos):] == responses
    assert every.n_tokens == len(responses) > last.n_tokens == len(scorer._encode(" python function"))
    assert every.response_bytes == sum(len(scorer.tokenizer.decode(scorer._encode(" " + c)).encode())
                                       for r, c in MULTI if r == "assistant")
    assert every.loss_cond != last.loss_cond


def test_output_head_in_chunks_gives_the_same_losses(model_dir, monkeypatch):
    """The lean forward sends the scored positions through the output head HEAD_ROWS at a time."""
    from instructlake.scoring import scorer as scorer_mod

    whole = TransformersScorer("tiny", str(model_dir), max_length=64, device="cpu").score(ITEMS)
    monkeypatch.setattr(scorer_mod, "HEAD_ROWS", 3)
    chunked = TransformersScorer("tiny", str(model_dir), max_length=64, device="cpu").score(ITEMS)
    assert [s.loss_cond for s in chunked] == pytest.approx([s.loss_cond for s in whole], abs=1e-5)
    assert [s.loss_uncond for s in chunked] == pytest.approx([s.loss_uncond for s in whole], abs=1e-5)
