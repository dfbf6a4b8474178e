"""A Pygments lexer for netspec's ``.net`` language.

Registered through the ``pygments.lexers`` entry point (see pyproject.toml), so that
Sphinx, MkDocs, Jupyter and other Pygments users highlight ```` ```netspec ```` (or
```` ```net ````) blocks and ``*.net`` files once netspec is installed::

    pygmentize -l netspec specs/resnet50.net

This module imports Pygments only: no pydantic, no netspec internals. The op names
below are the registry's (tests/test_pygments.py keeps them equal).
"""

from __future__ import annotations

from pygments.lexer import RegexLexer, bygroups, words
from pygments.token import Comment, Keyword, Name, Number, Operator, Punctuation, String, Text, Whitespace

__all__ = ["NetspecLexer"]

#: Ops usable as steps or merge sources (netspec.ops.registry.OPS).
OPS = (
    "abs", "add", "attention", "average", "avgpool1d", "avgpool2d", "avgpool3d", "batchnorm", "bidirectional",
    "class_token", "concat", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
    "conv_transpose3d", "dense", "depthwise_conv2d", "dot", "dropout", "elu", "embedding", "exp", "flatten",
    "gaussian_noise", "gelu", "global_avgpool1d", "global_avgpool2d", "global_avgpool3d", "global_maxpool1d",
    "global_maxpool2d", "global_maxpool3d", "gru", "hard_sigmoid", "layernorm", "leaky_relu", "linear", "log",
    "lstm", "masking", "maximum", "maxpool1d", "maxpool2d", "maxpool3d", "minimum", "multiply", "negative",
    "permute", "position_embedding", "relu", "relu6", "repeat_like", "repeat_vector", "reshape", "result",
    "sample_normal", "scale", "select", "separable_conv2d", "shift", "sigmoid", "simple_rnn",
    "sinusoidal_position", "softmax", "softplus", "sqrt", "square", "subtract", "swish", "tanh",
    "time_distributed", "upsample1d", "upsample2d", "upsample3d", "zeropad1d", "zeropad2d", "zeropad3d",
)
#: Losses, optimisers, initialisers and regularisers (LOSS_FNS, OPTIMIZER_DEFS, FAMILIES).
FUNCTIONS = (
    "mse", "mae", "huber", "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy",
    "hinge", "kl_divergence", "cosine_similarity", "kl_normal", "contrastive", "triplet", "sgd", "rmsprop",
    "adagrad", "adadelta", "adam", "nadam", "adamw", "zeros", "ones", "constant", "normal", "uniform",
    "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform", "lecun_normal", "orthogonal",
    "l1", "l2", "l1_l2",
)
DTYPES = ("float32", "int32", "int64")
STATEMENTS = ("input", "target", "layer", "output", "loss", "optimizer", "return")

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"


class NetspecLexer(RegexLexer):
    """netspec ``.net`` specs: networks, blocks, chains of ops."""

    name = "netspec"
    aliases = ["netspec", "net"]
    filenames = ["*.net"]
    mimetypes = ["text/x-netspec"]
    url = "https://github.com/netspec/netspec"

    tokens = {
        "root": [
            # a binding at the start of a line: `features = stem -> ...`
            (rf"^([ \t\f]*)({_NAME})([ \t\f]*)(=)(?!=)", bygroups(Whitespace, Name.Variable, Whitespace, Operator)),
            (r"[ \t\f]+", Whitespace),
            (r"\r?\n", Whitespace),
            (r"\\[ \t\f]*\r?\n", Text),  # line continuation
            (r"#.*?$", Comment.Single),
            (rf"(network|block)([ \t\f]+)({_NAME})", bygroups(Keyword.Declaration, Whitespace, Name.Class)),
            (rf"(layer)([ \t\f]+)({_NAME})", bygroups(Keyword.Declaration, Whitespace, Name.Variable)),
            (rf"(input|target)([ \t\f]+)({_NAME})", bygroups(Keyword.Declaration, Whitespace, Name.Variable)),
            (words(STATEMENTS, suffix=r"\b"), Keyword),
            (r"\bin\b", Keyword.Pseudo),
            (words(("true", "false"), suffix=r"\b"), Keyword.Constant),
            (words(DTYPES, suffix=r"\b"), Keyword.Type),
            (r'"(?:[^"\\\n]|\\.)*"', String.Double),
            (r"[0-9]+\.[0-9]*(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+", Number.Float),
            (r"[0-9]+", Number.Integer),
            (r"->", Operator),
            (rf"({_NAME})([ \t\f]*)(=)(?!=)", bygroups(Name.Attribute, Whitespace, Operator)),  # keyword argument
            (words(OPS, suffix=r"\b"), Name.Builtin),
            (words(FUNCTIONS, suffix=r"\b"), Name.Function.Magic),
            (rf"{_NAME}(?=[ \t\f]*\()", Name.Function),
            (_NAME, Name),
            (r"//|[-+*/%=:]", Operator),
            (r"[()\[\]{},]", Punctuation),
        ],
    }
