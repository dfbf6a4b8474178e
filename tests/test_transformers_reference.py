"""Issue 14: gpt2_small.net and bert_base.net compute Hugging Face's GPT-2 and BERT.

The references are transformers' own GPT2LMHeadModel(GPT2Config()) and BertModel(BertConfig()),
built from their configs with random weights (nothing is downloaded). Their weights are mapped
into netspec's canonical layout (docs/weights.md), the spec is built by the PyTorch backend from
them, and both run on the same short token sequences.
"""

import numpy as np
import pytest
from conftest import ROOT

import netspec
from netspec import backends

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.slow


def _close(got, want, tol=1e-5):
    """verify's rule: |got - want| <= tol * max(1, |want|)."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    err = np.abs(got - want) / np.maximum(1.0, np.abs(want))
    assert err.max() <= tol, f"max scaled error {err.max():.3e}"


def _np(t):
    return t.detach().cpu().numpy().astype(np.float32)


def gpt2_canonical(hf) -> dict[str, np.ndarray]:
    """GPT2LMHeadModel's weights in gpt2_small.net's canonical names (Conv1D weights are [in, out])."""
    sd = hf.state_dict()
    d = hf.config.n_embd
    out = {"wte.embeddings": sd["transformer.wte.weight"],
           "h.position_embedding.embeddings": sd["transformer.wpe.weight"],
           "h.layernorm.gamma": sd["transformer.ln_f.weight"], "h.layernorm.beta": sd["transformer.ln_f.bias"]}
    for i in range(hf.config.n_layer):
        p, q = f"transformer.h.{i}.", f"h.{i}."
        w, b = sd[p + "attn.c_attn.weight"], sd[p + "attn.c_attn.bias"]
        for j, name in enumerate("qkv"):
            out[q + f"a.attention.{name}_kernel"] = w[:, j * d:(j + 1) * d].T
            out[q + f"a.attention.{name}_bias"] = b[j * d:(j + 1) * d]
        out[q + "a.attention.o_kernel"] = sd[p + "attn.c_proj.weight"].T
        out[q + "a.attention.o_bias"] = sd[p + "attn.c_proj.bias"]
        out[q + "a.layernorm.gamma"], out[q + "a.layernorm.beta"] = sd[p + "ln_1.weight"], sd[p + "ln_1.bias"]
        out[q + "m.layernorm.gamma"], out[q + "m.layernorm.beta"] = sd[p + "ln_2.weight"], sd[p + "ln_2.bias"]
        out[q + "m.dense.kernel"], out[q + "m.dense.bias"] = sd[p + "mlp.c_fc.weight"].T, sd[p + "mlp.c_fc.bias"]
        out[q + "m.dense_1.kernel"] = sd[p + "mlp.c_proj.weight"].T
        out[q + "m.dense_1.bias"] = sd[p + "mlp.c_proj.bias"]
    return {k: _np(v) for k, v in out.items()}


def bert_canonical(hf) -> dict[str, np.ndarray]:
    """BertModel's weights in bert_base.net's canonical names (nn.Linear weights are [out, in], as canonical)."""
    sd = hf.state_dict()
    e = "embeddings."
    out = {"words.embedding.embeddings": sd[e + "word_embeddings.weight"],
           "types.embedding.embeddings": sd[e + "token_type_embeddings.weight"],
           "hidden.position_embedding.embeddings": sd[e + "position_embeddings.weight"],
           "hidden.layernorm.gamma": sd[e + "LayerNorm.weight"], "hidden.layernorm.beta": sd[e + "LayerNorm.bias"],
           "pooled.dense.kernel": sd["pooler.dense.weight"], "pooled.dense.bias": sd["pooler.dense.bias"]}
    for i in range(hf.config.num_hidden_layers):
        p, q = f"encoder.layer.{i}.", f"hidden.{i}."
        for name, hf_name in (("q", "query"), ("k", "key"), ("v", "value")):
            out[q + f"a.attention.{name}_kernel"] = sd[p + f"attention.self.{hf_name}.weight"]
            out[q + f"a.attention.{name}_bias"] = sd[p + f"attention.self.{hf_name}.bias"]
        out[q + "a.attention.o_kernel"] = sd[p + "attention.output.dense.weight"]
        out[q + "a.attention.o_bias"] = sd[p + "attention.output.dense.bias"]
        out[q + "h.layernorm.gamma"] = sd[p + "attention.output.LayerNorm.weight"]
        out[q + "h.layernorm.beta"] = sd[p + "attention.output.LayerNorm.bias"]
        out[q + "m.dense.kernel"], out[q + "m.dense.bias"] = sd[p + "intermediate.dense.weight"], sd[
            p + "intermediate.dense.bias"]
        out[q + "m.dense_1.kernel"], out[q + "m.dense_1.bias"] = sd[p + "output.dense.weight"], sd[
            p + "output.dense.bias"]
        out[q + "layernorm.gamma"] = sd[p + "output.LayerNorm.weight"]
        out[q + "layernorm.beta"] = sd[p + "output.LayerNorm.bias"]
    return {k: _np(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def gpt2():
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config()).eval()
    return hf, netspec.load(ROOT / "specs" / "gpt2_small.net").network()


@pytest.fixture(scope="module")
def bert():
    torch.manual_seed(0)
    hf = transformers.BertModel(transformers.BertConfig()).eval()
    return hf, netspec.load(ROOT / "specs" / "bert_base.net").network()


def test_gpt2_counts_match_hugging_face(gpt2):
    hf, net = gpt2
    assert sum(p.numel() for p in hf.parameters()) == sum(net.param_counts()) == 124_439_808


def test_gpt2_computes_hugging_face_gpt2(gpt2):
    hf, net = gpt2
    weights = gpt2_canonical(hf)
    assert set(weights) == set(netspec.weights.expected_shapes(net))
    b = backends.get("torch")
    built = b.build(net, weights)
    for batch, length in ((1, 7), (2, 12)):
        ids = np.random.default_rng(length).integers(0, 50257, (batch, length)).astype(np.int64)
        with torch.no_grad():
            want = hf(torch.from_numpy(ids)).logits.numpy()
        (got,) = b.run(built, {"ids": ids})
        _close(got, want)
    # tying: one tensor serves the lookup and the output projection
    back = b.export_canonical(built)
    assert np.array_equal(back["wte.embeddings"], weights["wte.embeddings"])


def test_bert_counts_match_hugging_face(bert):
    hf, net = bert
    assert sum(p.numel() for p in hf.parameters()) == sum(net.param_counts()) == 109_482_240


def test_bert_computes_hugging_face_bert(bert):
    hf, net = bert
    weights = bert_canonical(hf)
    assert set(weights) == set(netspec.weights.expected_shapes(net))
    b = backends.get("torch")
    built = b.build(net, weights)
    for batch, length in ((1, 5), (2, 9)):
        rng = np.random.default_rng(length)
        ids = rng.integers(0, 30522, (batch, length)).astype(np.int64)
        segments = rng.integers(0, 2, (batch, length)).astype(np.int64)
        with torch.no_grad():
            ref = hf(input_ids=torch.from_numpy(ids), token_type_ids=torch.from_numpy(segments))
        hidden, pooled = b.run(built, {"ids": ids, "segments": segments})
        _close(hidden, ref.last_hidden_state.numpy())
        _close(pooled, ref.pooler_output.numpy())
