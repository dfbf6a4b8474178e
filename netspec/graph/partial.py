"""Check a module and keep what was built before the errors, to draw a spec that does not check."""

from __future__ import annotations

from .. import ir_plain as ir
from ..checker import Checker, _NetworkBuilder
from ..diagnostics import _order
from ..frontend import ast


def check_partial(module: ast.Module, source) -> tuple[list[ir.Network], list]:
    """Every network as far as it could be built, and the diagnostics (sorted as ``netspec check`` prints them).

    A network with errors keeps the inputs and nodes built before and around
    them; its outputs are those that were resolved.
    """
    from ..diagnostics import SpecError

    first = Checker(module, source)
    try:
        return list(first.run().networks), []
    except SpecError:
        pass
    checker = Checker(module, source)
    # What Checker.run() does first: index the blocks (its own checks are in the diagnostics already).
    for decl in module.decls:
        if isinstance(decl, ast.BlockDef) and decl.name not in checker.blocks:
            checker.blocks[decl.name] = decl
    networks = []
    for net in module.networks:
        checker.target_names = set()
        builder = _NetworkBuilder(checker, net)
        built = builder.build()
        if built is None:
            built = ir.Network(
                name=net.name, inputs=tuple(builder.inputs), targets=tuple(builder.targets),
                nodes=tuple(builder.nodes), outputs=(), output_names=(), loss=(), optimizer=None, span=net.span)
        networks.append(built)
    return networks, sorted(first.bag.items, key=_order)
