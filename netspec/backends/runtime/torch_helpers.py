"""Runtime helpers of generated PyTorch modules, as real (linted, tested) code.

The generator copies the source of the helpers a network uses into the generated
file (netspec/backends/torch.py reads this file as text; it never imports it), so
generated files stay standalone: they import torch, never netspec. Keep every
helper self-contained: it may use ``math``, ``torch``, ``nn``, ``F`` and the
helpers listed in ``DEPENDS`` in torch.py.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F


def _expect(x, name, shape):
    """Refuse an input that is not a batch of per-sample `shape` (None: any size)."""
    sizes = tuple(x.shape[1:])
    ok = len(sizes) == len(shape) and all(s in (None, d) for s, d in zip(shape, sizes))
    if not ok:
        want = ", ".join("*" if s is None else str(s) for s in shape)
        got = list(x.shape)
        raise ValueError(f"input {name}: expected [N, {want}]; received: {got}")


def _init(w, name, unit_forget_bias=False, **args):
    """Fill w from a spec initialiser; fans: dim 0 = out, dim 1 = in, rest = window."""
    receptive = math.prod(w.shape[2:])
    fan_in = w.shape[1] * receptive if w.dim() > 1 else len(w)
    fan_out = w.shape[0] * receptive if w.dim() > 1 else len(w)
    glorot, he, lecun = 2 / (fan_in + fan_out), 2 / fan_in, 1 / fan_in  # variances
    variance = {"glorot": glorot, "he": he, "lecun": lecun}.get(name.split("_")[0])
    with torch.no_grad():
        if name == "zeros":
            w.zero_()
        elif name == "ones":
            w.fill_(1.0)
        elif name == "constant":
            w.fill_(args["value"])
        elif name == "normal":
            w.normal_(args["mean"], args["std"])
        elif name == "uniform":
            w.uniform_(args["a"], args["b"])
        elif name == "orthogonal":
            nn.init.orthogonal_(w.view(len(w), -1), args["gain"])
        elif name.endswith("_uniform"):  # variance limit ** 2 / 3
            limit = math.sqrt(3 * variance)
            w.uniform_(-limit, limit)
        elif name.endswith("_normal"):  # truncated at 2 std, rescaled to the variance
            std = math.sqrt(variance) / 0.87962566103423978
            nn.init.trunc_normal_(w, 0.0, std, -2 * std, 2 * std)
        else:
            raise ValueError(f"unknown initializer {name}")
        if unit_forget_bias:  # LSTM: the forget gate's bias (2nd quarter) is 1
            units = len(w) // 4
            w[units : 2 * units] = 1.0


def _avg_pool(x, window, stride, padding, extra=None, count_include_pad=False):
    """Average pooling with (begin, end) padding per axis, possibly asymmetric.

    The divisor counts the window's input values, plus its padded ones when
    count_include_pad; `extra` end padding (ceil mode) is never counted.
    """
    pool = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[len(window) - 1]
    extra = extra or (0,) * len(window)
    spec = [p for b, e in reversed(padding) for p in (b, e)]
    more = [p for x_ in reversed(extra) for p in (0, x_)]
    ones = x.new_ones((1, 1, *x.shape[2:]))
    if count_include_pad:
        count = F.pad(F.pad(ones, spec, value=1.0), more)
    else:
        count = F.pad(F.pad(ones, spec), more)
    total = pool(F.pad(F.pad(x, spec), more), window, stride)
    return total / pool(count, window, stride)


def _final_state(output):
    """A recurrent layer's last step, from its (sequence [N, T, units], state)."""
    return output[0][:, -1]


def _merge_directions(output, units, mode, last):
    """Merge a bidirectional layer's directions; last: each one's final state."""
    forward, backward = output[0][..., :units], output[0][..., units:]
    if last:  # the backward direction ends at the first step
        forward, backward = forward[:, -1], backward[:, 0]
    if mode == "concat":
        return torch.cat((forward, backward), -1)
    if mode == "sum":
        return forward + backward
    if mode == "mul":
        return forward * backward
    return (forward + backward) / 2


def _dot(a, b, axes, normalize=False):
    """Per-sample dot product of axis axes[0] of a with axis axes[1] of b."""
    if normalize:
        a, b = F.normalize(a, dim=axes[0] + 1), F.normalize(b, dim=axes[1] + 1)
    a, b = torch.movedim(a, axes[0] + 1, -1), torch.movedim(b, axes[1] + 1, -1)
    shape = (len(a), *a.shape[1:-1], *b.shape[1:-1])
    a, b = a.reshape(len(a), -1, a.shape[-1]), b.reshape(len(b), -1, b.shape[-1])
    out = a @ b.transpose(1, 2)
    return out.reshape(shape if len(shape) > 1 else (len(out), 1))


def _binary_crossentropy(p, t):
    """mean(-(t log p + (1 - t) log(1 - p))), p clipped to [1e-7, 1 - 1e-7]."""
    p = torch.clamp(p, 1e-7, 1 - 1e-7)
    return -(t * torch.log(p) + (1 - t) * torch.log(1 - p)).mean()


def _categorical_crossentropy(p, t, from_logits=False, dim=-1):
    """mean(-sum(t log q, dim)); q is softmax(p), or p renormalised and clipped.

    q = clip(p / max(sum(p, dim), eps), eps, 1 - eps) with eps = 1e-7: probabilities
    are never read as logits.
    """
    if from_logits:
        logq = F.log_softmax(p, dim)
    else:
        q = p / torch.clamp(p.sum(dim, keepdim=True), min=1e-7)
        logq = torch.log(torch.clamp(q, 1e-7, 1 - 1e-7))
    return -(t * logq).sum(dim).mean()


def _sparse_categorical_crossentropy(p, t, from_logits=False, dim=-1):
    """mean(-log q[t]) over every position, q as in categorical_crossentropy.

    t holds class ids, shaped like p without its class axis, or with a trailing 1.
    """
    if from_logits:
        logq = F.log_softmax(p, dim)
    else:
        q = p / torch.clamp(p.sum(dim, keepdim=True), min=1e-7)
        logq = torch.log(torch.clamp(q, 1e-7, 1 - 1e-7))
    t = t.long()
    if t.dim() == p.dim():
        t = t.squeeze(-1)
    return -torch.gather(logq, dim, t.unsqueeze(dim)).mean()


def _hinge(p, t):
    """mean(max(1 - t p, 0)), t in {-1, 1}."""
    return torch.clamp(1 - t * p, min=0).mean()


def _kl_divergence(p, t):
    """mean(sum(t log(t / p), -1)), t and p clipped to [1e-7, 1]."""
    t, p = torch.clamp(t, 1e-7, 1), torch.clamp(p, 1e-7, 1)
    return (t * torch.log(t / p)).sum(-1).mean()


def _cosine_similarity(p, t):
    """mean(-sum(p' t', -1)), x' = x / max(|x|, 1e-7) along the last axis."""
    p, t = F.normalize(p, dim=-1, eps=1e-7), F.normalize(t, dim=-1, eps=1e-7)
    return -(p * t).sum(-1).mean()


def _kl_normal(mu, logvar):
    """KL(N(mu, exp(logvar)) || N(0, 1)): batch mean of the per-sample sum."""
    kl = -0.5 * (1 + logvar - mu**2 - torch.exp(logvar))
    return kl.flatten(1).sum(1).mean()


def _decoupled_weight_decay(rate):
    """An optimizer step pre-hook: w -= lr * rate * w (decoupled weight decay).

    The rate is rounded to float32, as the spec (and Keras) has it.
    """
    rate = torch.tensor(rate, dtype=torch.float32).item()

    def hook(optimizer, args, kwargs):
        with torch.no_grad():
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.mul_(1 - group["lr"] * rate)

    return hook


def _scheduled_lr(lr, t, schedule, decay_steps, decay_rate, alpha, warmup):
    """The learning rate of the step after t completed steps (the spec's schedule)."""
    if t < warmup:
        return lr * (t + 1) / warmup
    u = t - warmup
    if schedule == "step":
        return lr * decay_rate ** (u // decay_steps)
    if schedule == "exponential":
        return lr * decay_rate ** (u / decay_steps)
    if schedule == "cosine":
        c = min(u, decay_steps) / decay_steps
        return lr * (alpha + (1 - alpha) * 0.5 * (1 + math.cos(math.pi * c)))
    return lr


def _learning_rate_schedule(lr, **schedule):
    """A step pre-hook setting each step's learning rate (register it first)."""
    steps = [0]

    def hook(optimizer, args, kwargs):
        for group in optimizer.param_groups:
            group["lr"] = _scheduled_lr(lr, steps[0], **schedule)
        steps[0] += 1

    return hook


def _clip_gradients(parameters, clipnorm=0.0, clipvalue=0.0, global_clipnorm=0.0):
    """Clip the gradients in place: per weight, elementwise, or by their global norm.

    clipnorm: g *= clipnorm / max(|g|, clipnorm);
    clipvalue: g = clip(g, -clipvalue, clipvalue);
    global_clipnorm: each g *= global_clipnorm / max(sqrt(sum |g|^2), global_clipnorm).
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    if clipnorm:
        for g in grads:
            g.mul_(clipnorm / torch.clamp(torch.linalg.vector_norm(g), min=clipnorm))
    elif clipvalue:
        for g in grads:
            g.clamp_(-clipvalue, clipvalue)
    elif global_clipnorm and grads:
        norm = torch.sqrt(sum(g.square().sum() for g in grads))
        for g in grads:
            g.mul_(global_clipnorm / torch.clamp(norm, min=global_clipnorm))


class _Optimizer(torch.optim.Optimizer):
    """Base of the spec's optimizers: decoupled weight decay, then the update."""

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for w in group["params"]:
                if w.grad is None:
                    continue
                state = self.state[w]
                if not state:
                    state["step"] = 0
                    self.init_state(w, state, group)
                state["step"] += 1
                if group["weight_decay"]:  # w -= lr * weight_decay * w, rate in float32
                    rate = torch.tensor(group["weight_decay"], dtype=torch.float32)
                    w.sub_(w * rate.item() * group["lr"])
                self.update(w, w.grad, state, group)
        return loss


class _SGD(_Optimizer):
    """SGD with momentum in Keras's form: the spec's update also as the rate changes.

    v = momentum v - lr g; w += v, or with nesterov w += momentum v - lr g.
    """

    def __init__(self, params, lr, momentum, nesterov, weight_decay):
        hyper = {"lr": lr, "momentum": momentum, "nesterov": nesterov}
        super().__init__(params, {**hyper, "weight_decay": weight_decay})

    def init_state(self, w, state, group):
        state["v"] = torch.zeros_like(w)

    def update(self, w, g, state, group):
        step = group["lr"] * g
        v = state["v"].mul_(group["momentum"]).sub_(step)
        if group["nesterov"]:
            w.add_(v * group["momentum"] - step)
        else:
            w.add_(v)


class _RMSprop(_Optimizer):
    """RMSprop with eps inside the square root (Keras's update).

    v = rho v + (1 - rho) g^2; centered: a = rho a + (1 - rho) g, d = v - a^2,
    else d = v; u = lr g / sqrt(d + eps); with momentum s = momentum s + u,
    w -= s, else w -= u.
    """

    def __init__(self, params, lr, rho, momentum, centered, eps, weight_decay):
        hyper = {"lr": lr, "rho": rho, "momentum": momentum, "centered": centered}
        super().__init__(params, {**hyper, "eps": eps, "weight_decay": weight_decay})

    def init_state(self, w, state, group):
        state["v"] = torch.zeros_like(w)
        if group["centered"]:
            state["a"] = torch.zeros_like(w)
        if group["momentum"]:
            state["s"] = torch.zeros_like(w)

    def update(self, w, g, state, group):
        rho = group["rho"]
        v = state["v"].mul_(rho).add_((1 - rho) * g.square())
        if group["centered"]:
            a = state["a"].mul_(rho).add_((1 - rho) * g)
            d = v - a.square() + group["eps"]
        else:
            d = v + group["eps"]
        u = group["lr"] * g / torch.sqrt(d)
        if group["momentum"]:
            w.sub_(state["s"].mul_(group["momentum"]).add_(u))
        else:
            w.sub_(u)


class _Adagrad(_Optimizer):
    """Adagrad with eps inside the square root (Keras's update).

    s starts at initial_accumulator; s += g^2; w -= lr g / sqrt(s + eps).
    """

    def __init__(self, params, lr, initial_accumulator, eps, weight_decay):
        hyper = {"lr": lr, "initial_accumulator": initial_accumulator, "eps": eps}
        super().__init__(params, {**hyper, "weight_decay": weight_decay})

    def init_state(self, w, state, group):
        state["s"] = torch.full_like(w, group["initial_accumulator"])

    def update(self, w, g, state, group):
        s = state["s"].add_(g.square())
        w.sub_(group["lr"] * g / torch.sqrt(s + group["eps"]))


class _Adam(_Optimizer):
    """Adam (and AdamW) with Keras's update: eps is added to sqrt(v), not sqrt(v_hat).

    m += (1 - beta1) (g - m); v += (1 - beta2) (g^2 - v); amsgrad: v = max(v) so far;
    w -= lr sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps).
    """

    def __init__(self, params, lr, beta1, beta2, eps, amsgrad, weight_decay):
        hyper = {
            "lr": lr,
            "beta1": beta1,
            "beta2": beta2,
            "eps": eps,
            "amsgrad": amsgrad,
        }
        super().__init__(params, {**hyper, "weight_decay": weight_decay})

    def init_state(self, w, state, group):
        state["m"] = torch.zeros_like(w)
        state["v"] = torch.zeros_like(w)
        if group["amsgrad"]:
            state["v_max"] = torch.zeros_like(w)

    def update(self, w, g, state, group):
        beta1, beta2, t = group["beta1"], group["beta2"], state["step"]
        m = state["m"].add_((g - state["m"]) * (1 - beta1))
        v = state["v"].add_((g.square() - state["v"]) * (1 - beta2))
        if group["amsgrad"]:
            v = torch.maximum(state["v_max"], v, out=state["v_max"])
        # the bias correction takes the betas rounded to float32 (the spec's rule)
        b1, b2 = (torch.tensor(b, dtype=torch.float32).item() for b in (beta1, beta2))
        alpha = group["lr"] * math.sqrt(1 - b2**t) / (1 - b1**t)
        w.sub_(m * alpha / (torch.sqrt(v) + group["eps"]))


class _Nadam(_Optimizer):
    """Nadam, Keras's: Adam with a Nesterov look-ahead and a momentum schedule.

    u_k = beta1 (1 - 0.5 * 0.96^k), P_k = u_1 ... u_k; m, v as in Adam;
    m_hat = u_(k+1) m / (1 - P_k u_(k+1)) + (1 - u_k) g / (1 - P_k);
    w -= lr m_hat / (sqrt(v / (1 - beta2^k)) + eps).
    The constants in u_k, m, v and the bias correction are rounded to float32, as Keras
    has them; the running product P_k takes the spec's beta1 and 0.96 (Keras's too).
    """

    def __init__(self, params, lr, beta1, beta2, eps, weight_decay):
        hyper = {"lr": lr, "beta1": beta1, "beta2": beta2, "eps": eps}
        super().__init__(params, {**hyper, "weight_decay": weight_decay})

    def init_state(self, w, state, group):
        state["m"] = torch.zeros_like(w)
        state["v"] = torch.zeros_like(w)
        state["u_product"] = 1.0

    def update(self, w, g, state, group):
        t = state["step"]
        b1, b2, decay = (
            torch.tensor(b, dtype=torch.float32).item()
            for b in (group["beta1"], group["beta2"], 0.96)
        )
        state["u_product"] *= group["beta1"] * (1 - 0.5 * 0.96**t)
        u_t = b1 * (1 - 0.5 * decay**t)
        u_next = b1 * (1 - 0.5 * decay ** (t + 1))
        m = state["m"].add_((g - state["m"]) * (1 - b1))
        v = state["v"].add_((g.square() - state["v"]) * (1 - b2))
        p = state["u_product"]
        m_hat = m * (u_next / (1 - p * u_next)) + g * ((1 - u_t) / (1 - p))
        v_hat = v / (1 - b2**t)
        w.sub_(m_hat * group["lr"] / (torch.sqrt(v_hat) + group["eps"]))


class _BatchNorm1d(nn.BatchNorm1d):
    """nn.BatchNorm1d whose moving variance takes the biased batch variance.

    Training normalises with the batch mean and biased variance, as PyTorch does,
    and updates moving = m * moving + (1 - m) * batch (m the spec's momentum;
    self.momentum is 1 - m) for the mean and the biased variance, as Keras does.
    """

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        with torch.no_grad():
            var, mean = torch.var_mean(x, [0, *range(2, x.dim())], correction=0)
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var, self.momentum)
            self.num_batches_tracked.add_(1)
        w, b = self.weight, self.bias
        return F.batch_norm(x, None, None, w, b, True, 0.0, self.eps)


class _BatchNorm2d(nn.BatchNorm2d):
    """nn.BatchNorm2d whose moving variance takes the biased batch variance.

    Training normalises with the batch mean and biased variance, as PyTorch does,
    and updates moving = m * moving + (1 - m) * batch (m the spec's momentum;
    self.momentum is 1 - m) for the mean and the biased variance, as Keras does.
    """

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        with torch.no_grad():
            var, mean = torch.var_mean(x, [0, *range(2, x.dim())], correction=0)
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var, self.momentum)
            self.num_batches_tracked.add_(1)
        w, b = self.weight, self.bias
        return F.batch_norm(x, None, None, w, b, True, 0.0, self.eps)


class _BatchNorm3d(nn.BatchNorm3d):
    """nn.BatchNorm3d whose moving variance takes the biased batch variance.

    Training normalises with the batch mean and biased variance, as PyTorch does,
    and updates moving = m * moving + (1 - m) * batch (m the spec's momentum;
    self.momentum is 1 - m) for the mean and the biased variance, as Keras does.
    """

    def forward(self, x):
        if not self.training:
            return super().forward(x)
        with torch.no_grad():
            var, mean = torch.var_mean(x, [0, *range(2, x.dim())], correction=0)
            self.running_mean.lerp_(mean, self.momentum)
            self.running_var.lerp_(var, self.momentum)
            self.num_batches_tracked.add_(1)
        w, b = self.weight, self.bias
        return F.batch_norm(x, None, None, w, b, True, 0.0, self.eps)


# ---- Attention and Transformers (issue 14) ----------------------------------------------------


class _Attention(nn.Module):
    """Multi-head attention: q, k, v, o projections (canonical layout), fused SDPA.

    mask: [N, T_k], nonzero = attend; causal: query i attends keys j <= i.
    """

    def __init__(
        self,
        q_dim,
        kv_dim,
        heads,
        key_dim,
        value_dim,
        units,
        bias=True,
        dropout=0.0,
        causal=False,
    ):
        super().__init__()
        self.heads, self.dropout, self.causal = heads, dropout, causal
        self.q = nn.Linear(q_dim, heads * key_dim, bias=bias)
        self.k = nn.Linear(kv_dim, heads * key_dim, bias=bias)
        self.v = nn.Linear(kv_dim, heads * value_dim, bias=bias)
        self.o = nn.Linear(heads * value_dim, units, bias=bias)

    def forward(self, x, kv=None, mask=None):
        kv = x if kv is None else kv
        n, tq, tk, h = x.shape[0], x.shape[1], kv.shape[1], self.heads
        q = self.q(x).view(n, tq, h, -1).transpose(1, 2)
        k = self.k(kv).view(n, tk, h, -1).transpose(1, 2)
        v = self.v(kv).view(n, tk, h, -1).transpose(1, 2)
        causal = self.causal
        if mask is not None:
            mask = (mask != 0).view(n, 1, 1, tk)
            if causal:  # SDPA takes one of attn_mask and is_causal
                tril = torch.ones(tq, tk, dtype=torch.bool, device=x.device).tril()
                mask, causal = mask & tril, False
        p = self.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=p, is_causal=causal
        )
        return self.o(y.transpose(1, 2).reshape(n, tq, -1))


class _PositionEmbedding(nn.Module):
    """Learned positions: x + weight[:T] for x [N, T, D]."""

    def __init__(self, max_len, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_len, dim))

    def forward(self, x):
        return x + self.weight[: x.shape[1]]


def _sinusoidal_position(x, base=10000.0):
    """x + the fixed sin/cos encodings of Vaswani et al. for x [N, T, D]."""
    t, d = x.shape[1], x.shape[2]
    pos = torch.arange(t, dtype=torch.float64, device=x.device)[:, None]
    freq = torch.pow(
        base, -torch.arange(0, d, 2, dtype=torch.float64, device=x.device) / d
    )
    table = torch.stack((torch.sin(pos * freq), torch.cos(pos * freq)), dim=-1).reshape(
        t, d
    )
    return x + table.to(x.dtype)


class _ClassToken(nn.Module):
    """A learned token prepended to x [N, T, D]."""

    def __init__(self, dim):
        super().__init__()
        self.token = nn.Parameter(torch.empty(dim))

    def forward(self, x):
        return torch.cat((self.token.expand(x.shape[0], 1, -1), x), dim=1)


# Lecture ops (issue 13) -------------------------------------------------------------


def _gaussian_noise(x, stddev, training):
    """x + stddev * N(0, 1) in training (torch's global stream); x at inference."""
    return x + stddev * torch.randn_like(x) if training else x


def _sample_normal(mu, logvar, training, scale=1.0):
    """The reparameterisation trick: mu + exp(logvar / 2) * eps in training, else mu."""
    if not training:
        return mu
    return mu + torch.exp(0.5 * logvar) * (scale * torch.randn_like(mu))


def _repeat_vector(x, n):
    """[N, F] -> [N, n, F] (Keras's RepeatVector)."""
    return x.unsqueeze(1).expand(-1, n, -1)


def _repeat_like(v, seq):
    """[N, F] repeated once per step of seq [N, T, ...] -> [N, T, F]."""
    return v.unsqueeze(1).expand(-1, seq.shape[1], -1)


def _initial_state(*states):
    """Initial states [N, units] as nn.RNN/GRU ([1, N, units]) or nn.LSTM take them."""
    states = tuple(s.unsqueeze(0) for s in states)
    return states[0] if len(states) == 1 else states


def _with_state(output, last):
    """(output, h[, c]) from a recurrent layer's (sequence, state).

    last: the output is the last step.
    """
    sequence, state = output
    states = state if isinstance(state, tuple) else (state,)
    return (sequence[:, -1] if last else sequence, *(s[0] for s in states))


def _contrastive(d, t, margin=1.0):
    """mean(t d^2 + (1 - t) max(margin - d, 0)^2): t = 1 for a matching pair."""
    return (t * d**2 + (1 - t) * torch.clamp(margin - d, min=0) ** 2).mean()


def _triplet(a, p, n, margin=0.2):
    """FaceNet's loss: mean(max(|a - p|^2 - |a - n|^2 + margin, 0)).

    Squared distances sum over every per-sample axis.
    """
    pos = ((a - p) ** 2).flatten(1).sum(1)
    neg = ((a - n) ** 2).flatten(1).sum(1)
    return torch.clamp(pos - neg + margin, min=0).mean()


def _mask(source, kind, value):
    """The steps [N, T] that are not padding.

    ids != value, or sequences [N, T, F] with a feature != value.
    """
    if kind == "ids":
        return source != value
    return (source != value).any(-1)


def _masking(x, value):
    """Keras's Masking: a step whose features all equal value becomes 0."""
    return x * (x != value).any(-1, keepdim=True).to(x.dtype)


def _masked(rnn, x, mask, state=None):
    """A recurrent module over x [N, T, F] that skips masked steps, as Keras does.

    It carries its state over them, and its output there is the previous step's
    (0 before the first kept step). Returns (sequence, state) as the module does.
    """
    n, steps = x.shape[0], x.shape[1]
    if state is None:
        zeros = x.new_zeros(1, n, rnn.hidden_size)
        state = (zeros, zeros) if isinstance(rnn, nn.LSTM) else zeros
    out = x.new_zeros(n, rnn.hidden_size)
    outputs = []
    for t in range(steps):
        y, new = rnn(x[:, t : t + 1], state)
        keep = mask[:, t].unsqueeze(-1)
        if isinstance(new, tuple):
            state = tuple(torch.where(keep, s, p) for s, p in zip(new, state))
        else:
            state = torch.where(keep, new, state)
        out = torch.where(keep, y[:, 0], out)
        outputs.append(out)
    if not outputs:
        return x.new_zeros(n, 0, rnn.hidden_size), state
    return torch.stack(outputs, 1), state


def _masked_pool(x, mask, kind):
    """Global average or max over the kept steps of x [N, C, L] (mask [N, L]).

    0 where every step is masked.
    """
    keep = mask.unsqueeze(1)
    count = keep.sum(-1)
    if kind == "avg":
        return torch.where(keep, x, 0).sum(-1) / count.clamp(min=1)
    top = torch.where(keep, x, -math.inf).amax(-1)
    return torch.where(count > 0, top, 0)
