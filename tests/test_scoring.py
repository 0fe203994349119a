"""Batched scoring equals the plain one-sequence reference; completions are counted exactly."""

import numpy as np
import pytest
import torch

from steer_pu.engine import scoring
from steer_pu.engine.encoding import PromptFormat
from steer_pu.engine.scoring import score_pairs, score_pairs_plain
from steer_pu.interventions import VectorIntervention
from steer_pu.suite.concepts import load_concepts


def encoded(tiny_tokenizer, tiny_suite):
    pairs = [p for c in load_concepts(tiny_suite) for p in c.test]
    return PromptFormat(tiny_tokenizer, use_chat_template=True).encode_all(pairs)


def test_chat_format_and_end_of_turn(tiny_tokenizer, tiny_suite):
    fmt = PromptFormat(tiny_tokenizer, use_chat_template=True)
    assert fmt.end_of_turn == "<|im_end|>"
    pair = load_concepts(tiny_suite)[0].test[0]
    enc = fmt.encode(pair)
    assert tiny_tokenizer.decode(enc.prompt_ids).endswith("<|im_start|>assistant\n")
    assert enc.pos_ids[-1] == tiny_tokenizer.convert_tokens_to_ids("<|im_end|>")
    # byte-level tokenizer: one token per byte, plus the end-of-turn token
    assert len(enc.pos_ids) == len(pair.positive.encode()) + 1


def test_batched_equals_plain(tiny_model, tiny_tokenizer, tiny_suite):
    pairs = encoded(tiny_tokenizer, tiny_suite)
    plain = score_pairs_plain(tiny_model, pairs)
    # a small token budget forces many batches of different widths
    for budget in (250, 100_000):
        batched = score_pairs(tiny_model, pairs, token_budget=budget)
        np.testing.assert_allclose(batched.nll_pos, plain.nll_pos, rtol=0, atol=1e-5)
        np.testing.assert_allclose(batched.nll_neg, plain.nll_neg, rtol=0, atol=1e-5)
        assert batched.len_pos.tolist() == [len(p.pos_ids) for p in pairs]
    assert (plain.nll_pos > 0).all() and not np.allclose(plain.nll_pos, plain.nll_neg)


@pytest.mark.parametrize("threads, atol", [(1, 1e-9), (2, 1e-5)])
def test_vocabulary_projection_in_chunks_changes_nothing(
    tiny_model, tiny_tokenizer, tiny_suite, monkeypatch, threads, atol
):
    # One thread: the same numbers. Two: a multithreaded GEMM of 7 rows may sum in another order
    # than one of all rows (seen: 5e-7 nats), so only float32 rounding is allowed there.
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        pairs = encoded(tiny_tokenizer, tiny_suite)
        whole = score_pairs(tiny_model, pairs, token_budget=100_000)
        vocab = tiny_model.get_output_embeddings().weight.shape[0]
        monkeypatch.setattr(scoring, "PROJECTION_ELEMENTS", 7 * vocab)  # chunks of 7, one ending mid-completion
        assert scoring.projection_chunk(vocab) == 7
        chunked = score_pairs(tiny_model, pairs, token_budget=100_000)
    finally:
        torch.set_num_threads(saved)
    np.testing.assert_allclose(chunked.nll_pos, whole.nll_pos, rtol=0, atol=atol)
    np.testing.assert_allclose(chunked.nll_neg, whole.nll_neg, rtol=0, atol=atol)


def test_projection_chunk_holds_the_logits_not_the_positions():
    # SmolLM2 keeps its 1024 positions; Gemma-3's 5.3x larger vocabulary gets 5.3x fewer
    assert scoring.projection_chunk(49_152) == 1024
    assert scoring.projection_chunk(262_144) == 192
    assert scoring.projection_chunk(10**9) == 1  # never zero positions


def test_batched_equals_plain_under_steering(tiny_model, tiny_tokenizer, tiny_suite):
    pairs = encoded(tiny_tokenizer, tiny_suite)[:5]
    vec = VectorIntervention(1, {"vector": torch.linspace(-1, 1, 32)})
    with vec.apply(tiny_model, 3.0):
        batched, plain = score_pairs(tiny_model, pairs, token_budget=200), score_pairs_plain(tiny_model, pairs)
    np.testing.assert_allclose(batched.nll_pos, plain.nll_pos, rtol=0, atol=1e-5)
    np.testing.assert_allclose(batched.nll_neg, plain.nll_neg, rtol=0, atol=1e-5)


def test_nll_hand_check_on_one_completion(tiny_model, tiny_tokenizer, tiny_suite):
    pair = encoded(tiny_tokenizer, tiny_suite)[0]
    ids = list(pair.prompt_ids + pair.neg_ids)
    expected = 0.0
    with torch.no_grad():
        logits = tiny_model(input_ids=torch.tensor([ids])).logits[0].double()
    for t in range(len(pair.prompt_ids), len(ids)):  # only completion tokens are scored
        expected -= torch.log_softmax(logits[t - 1], dim=-1)[ids[t]].item()
    assert abs(score_pairs(tiny_model, [pair]).nll_neg[0] - expected) < 1e-5


@pytest.mark.parametrize("per_replay", [1, 2, 3])
def test_sweep_equals_per_strength_scoring(tiny_model, tiny_tokenizer, tiny_suite, per_replay):
    from steer_pu.engine.sweep import score_sweep
    from steer_pu.interventions import LocalWeightIntervention, LoRAIntervention

    pairs = encoded(tiny_tokenizer, tiny_suite)
    g = torch.Generator().manual_seed(0)
    for intervention in (
        VectorIntervention(2, {"vector": torch.randn(32, generator=g)}),
        LoRAIntervention(1, {"lora_A": torch.randn(4, 64, generator=g), "lora_B": torch.randn(32, 4, generator=g)}),
        LocalWeightIntervention(
            1,
            {"delta_weight": 0.05 * torch.randn(32, 64, generator=g), "delta_bias": 0.1 * torch.randn(32, generator=g)},
        ),
    ):
        grid = [-2.0, 0.0, 1.0, 4.0]  # 3 steered strengths: replays of 1, 2 + 1, or all 3 at once
        swept = score_sweep(tiny_model, pairs, intervention, grid, token_budget=300, strengths_per_replay=per_replay)
        for m in grid:
            if m == 0:
                expected = score_pairs(tiny_model, pairs)
            else:
                with intervention.apply(tiny_model, m):
                    expected = score_pairs(tiny_model, pairs)
            np.testing.assert_allclose(swept[m].nll_pos, expected.nll_pos, rtol=0, atol=1e-5)
            np.testing.assert_allclose(swept[m].nll_neg, expected.nll_neg, rtol=0, atol=1e-5)
        assert not np.allclose(swept[4.0].nll_pos, swept[0.0].nll_pos)
