"""A layered (Sugiyama) layout in plain Python: layers, crossing reduction, coordinates.

1. Layers: longest path from the sources; network inputs on the first layer,
   outputs on the last, other sources (shared-layer weights) just above their
   first consumer.
2. Long edges get one dummy node per layer crossed.
3. Order within layers: barycenter sweeps down and up, keeping the order with
   the fewest crossings.
4. x: each layer in turn, the positions closest (least squares) to the mean of
   the neighbours' positions that keep the order and the gaps: an isotonic
   regression solved exactly by pool-adjacent-violators. Then each long edge is
   made straight (its dummies at their median x) where the neighbours leave room.
5. y: layers stacked, with room between them for shape labels and group titles.

Everything is deterministic, and ``netspec/graph/static/graph.js`` implements
the same steps with the same arithmetic so that the HTML draws what the SVG
draws (a browser test compares the two). Change both together.
"""

from __future__ import annotations

SEP = 28  # horizontal gap between two boxes
DUMMY_SEP = 14  # gap next to an edge passing through a layer
GROUP_PAD = 10  # space between a group's frame and what it holds
GROUP_TITLE = 18  # room for a group's title above its contents
LAYER_GAP = 40  # vertical gap between layers (edge and its shape label)
SWEEPS = 8
X_ROUNDS = 6
MARGIN = 20


def r1(x: float) -> float:
    """Round half up to one decimal, as JavaScript's Math.round does."""
    import math

    return math.floor(x * 10 + 0.5) / 10


def layout(nodes: list[dict], edges: list[dict], ancestors: dict[str, list[str]]) -> dict:
    """Place ``nodes`` (dicts with id, kind, w, h) and route ``edges`` (from, to).

    ``ancestors`` gives each node id's expanded groups, outermost first. Returns
    {"pos": {id: [x, y]} (centres), "routes": [[x, y] ...] per edge, "layers":
    {id: layer}, "width", "height", "layer_top", "layer_height"}.
    """
    n = len(nodes)
    index = {v["id"]: i for i, v in enumerate(nodes)}
    succ: list[list[int]] = [[] for _ in range(n)]
    pred: list[list[int]] = [[] for _ in range(n)]
    for e in edges:
        a, b = index[e["from"]], index[e["to"]]
        succ[a].append(b)
        pred[b].append(a)

    # 1. layers ------------------------------------------------------------------------
    layer = [0] * n
    for i in topo_order(n, succ, pred):
        for p in pred[i]:
            layer[i] = max(layer[i], layer[p] + 1)
    for i in range(n):  # sources that are not inputs: just above their first consumer
        if not pred[i] and nodes[i]["kind"] != "input" and succ[i]:
            layer[i] = max(0, min(layer[s] for s in succ[i]) - 1)
    last = 0
    for i in range(n):
        if nodes[i]["kind"] != "output":
            last = max(last, layer[i])
    for i in range(n):
        if nodes[i]["kind"] == "output":
            layer[i] = last + 1
    depth = max(layer) + 1 if n else 0

    # 2. dummies -------------------------------------------------------------------------
    # vertices: 0..n-1 are nodes, then dummies; chains[e] = vertices of edge e
    vlayer = list(layer)
    vwidth = [v["w"] for v in nodes]
    vgroups = [ancestors.get(v["id"], []) for v in nodes]
    vkey = [float(i) for i in range(n)]
    vsucc = [[] for _ in range(n)]
    vpred = [[] for _ in range(n)]
    chains = []
    for k, e in enumerate(edges):
        a, b = index[e["from"]], index[e["to"]]
        chain = [a]
        common = _common(vgroups[a], vgroups[b])
        for lay in range(layer[a] + 1, layer[b]):
            vlayer.append(lay)
            vwidth.append(0)
            vgroups.append(common)
            vkey.append(a + (k + 1) / (len(edges) + 1))
            vsucc.append([])
            vpred.append([])
            chain.append(len(vlayer) - 1)
        chain.append(b)
        for u, w in zip(chain, chain[1:]):
            vsucc[u].append(w)
            vpred[w].append(u)
        chains.append(chain)
    m = len(vlayer)

    # 3. order ---------------------------------------------------------------------------
    layers: list[list[int]] = [[] for _ in range(depth)]
    for v in sorted(range(m), key=lambda v: (vkey[v], v)):
        layers[vlayer[v]].append(v)
    best = [list(lay) for lay in layers]
    best_cross = crossings(layers, vsucc)
    for sweep in range(SWEEPS):
        down = sweep % 2 == 0
        rng = range(1, depth) if down else range(depth - 2, -1, -1)
        for li in rng:
            ref = layers[li - 1] if down else layers[li + 1]
            pos = {v: i for i, v in enumerate(ref)}
            keyed = []
            for i, v in enumerate(layers[li]):
                nb = [pos[u] for u in (vpred[v] if down else vsucc[v]) if u in pos]
                keyed.append((_mean(nb) if nb else float(i), i, v))
            keyed.sort()
            layers[li] = [v for _, _, v in keyed]
        c = crossings(layers, vsucc)
        if c < best_cross:
            best_cross, best = c, [list(lay) for lay in layers]
    layers = best

    # 4. x -------------------------------------------------------------------------------
    x = [0.0] * m
    for lay in layers:
        cur = 0.0
        for j, v in enumerate(lay):
            if j:
                cur += gap(lay[j - 1], v, vwidth, vgroups)
            x[v] = cur
    for rnd in range(X_ROUNDS):
        for down in (True, False):
            rng = range(1, depth) if down else range(depth - 2, -1, -1)
            for li in rng:
                lay = layers[li]
                want = []
                for v in lay:
                    nb = vpred[v] if down else vsucc[v]
                    if rnd == X_ROUNDS - 1:
                        nb = vpred[v] + vsucc[v]
                    want.append(_mean([x[u] for u in nb]) if nb else x[v])
                for v, c in zip(lay, place(lay, want, vwidth, vgroups)):
                    x[v] = c
    straighten(chains, layers, vlayer, x, vwidth, vgroups)
    left = min((x[v] - vwidth[v] / 2 - GROUP_PAD * len(vgroups[v]) for v in range(m)), default=0.0)
    for v in range(m):
        x[v] = x[v] - left + MARGIN

    # 5. y -------------------------------------------------------------------------------
    heights = [0] * depth
    for i in range(n):
        heights[layer[i]] = max(heights[layer[i]], nodes[i]["h"])
    starts = [0] * depth  # nested group titles that open at a layer
    ends = [0] * depth
    tops: dict[str, int] = {}
    bottoms: dict[str, int] = {}
    for i in range(n):
        for g in vgroups[i]:
            tops[g] = min(tops.get(g, layer[i]), layer[i])
            bottoms[g] = max(bottoms.get(g, layer[i]), layer[i])
    for i in range(n):
        starts[layer[i]] = max(starts[layer[i]], sum(1 for g in vgroups[i] if tops[g] == layer[i]))
        ends[layer[i]] = max(ends[layer[i]], sum(1 for g in vgroups[i] if bottoms[g] == layer[i]))
    top = [0.0] * depth
    y0 = float(MARGIN)
    for li in range(depth):
        y0 += starts[li] * (GROUP_PAD + GROUP_TITLE)
        top[li] = y0
        y0 += heights[li] + ends[li] * GROUP_PAD + LAYER_GAP
    height = y0 - LAYER_GAP + MARGIN
    pos = {nodes[i]["id"]: [r1(x[i]), r1(top[layer[i]] + heights[layer[i]] / 2)] for i in range(n)}
    routes = []
    for chain in chains:
        pts = []
        for v in chain[1:-1]:
            li = vlayer[v]
            pts.append([r1(x[v]), r1(top[li])])
            pts.append([r1(x[v]), r1(top[li] + heights[li])])
        routes.append(pts)
    width = max((x[v] + vwidth[v] / 2 + GROUP_PAD * len(vgroups[v]) for v in range(m)), default=0.0) + MARGIN
    return {"pos": pos, "routes": routes, "layers": {nodes[i]["id"]: layer[i] for i in range(n)},
            "width": r1(width), "height": r1(height),
            "layer_top": [r1(t) for t in top], "layer_height": heights}


def straighten(chains: list[list[int]], layers: list[list[int]], vlayer: list[int], x: list[float], width: list,
               groups: list) -> None:
    """Draw each long edge straight down where its neighbours leave room: its dummies at their median x."""
    index = {}
    for lay in layers:
        for j, v in enumerate(lay):
            index[v] = j
    for chain in chains:
        dummies = chain[1:-1]
        if len(dummies) < 2:
            continue
        xs = sorted(x[v] for v in dummies)
        target = xs[len(xs) // 2]
        fits = True
        for v in dummies:
            lay, j = layers[vlayer[v]], index[v]
            if j > 0 and target - x[lay[j - 1]] < gap(lay[j - 1], v, width, groups) - 1e-9:
                fits = False
            if j + 1 < len(lay) and x[lay[j + 1]] - target < gap(v, lay[j + 1], width, groups) - 1e-9:
                fits = False
        if fits:
            for v in dummies:
                x[v] = target


def topo_order(n: int, succ: list[list[int]], pred: list[list[int]]) -> list[int]:
    """Kahn's algorithm, smallest index first; nodes on a cycle (none expected) follow in index order."""
    import heapq

    indeg = [len(p) for p in pred]
    heap = [i for i in range(n) if indeg[i] == 0]
    heapq.heapify(heap)
    out = []
    seen = [False] * n
    while heap:
        i = heapq.heappop(heap)
        out.append(i)
        seen[i] = True
        for s in succ[i]:
            indeg[s] -= 1
            if indeg[s] == 0:
                heapq.heappush(heap, s)
    out += [i for i in range(n) if not seen[i]]
    return out


def _mean(values: list) -> float:
    """Left-to-right sum over count (not sum(): Python 3.12 compensates float sums, JavaScript does not)."""
    total = 0
    for v in values:
        total += v
    return total / len(values)


def _common(a: list[str], b: list[str]) -> list[str]:
    out = []
    for g, h in zip(a, b):
        if g != h:
            break
        out.append(g)
    return out


def gap(u: int, v: int, width: list, groups: list) -> float:
    """Distance between the centres of neighbours u, v: half widths, a gap, and room for group frames."""
    a, b = groups[u], groups[v]
    c = len(_common(a, b))
    frames = (len(a) - c) + (len(b) - c)
    sep = SEP if width[u] and width[v] else DUMMY_SEP
    return width[u] / 2 + width[v] / 2 + sep + frames * GROUP_PAD


def place(lay: list[int], want: list[float], width: list, groups: list) -> list[float]:
    """Centres closest to ``want`` (least squares) that keep the order and the gaps (pool adjacent violators)."""
    off = [0.0] * len(lay)
    for j in range(1, len(lay)):
        off[j] = off[j - 1] + gap(lay[j - 1], lay[j], width, groups)
    # blocks of [sum, count, first index]
    blocks: list[list[float]] = []
    for j, w in enumerate(want):
        blocks.append([w - off[j], 1.0, float(j)])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, c, _ = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += c
    out = [0.0] * len(lay)
    for bi, (s, c, first) in enumerate(blocks):
        end = int(blocks[bi + 1][2]) if bi + 1 < len(blocks) else len(lay)
        for j in range(int(first), end):
            out[j] = s / c + off[j]
    return out


def crossings(layers: list[list[int]], succ: list[list[int]]) -> int:
    """Edge crossings between consecutive layers."""
    total = 0
    for li in range(len(layers) - 1):
        pos = {v: i for i, v in enumerate(layers[li + 1])}
        ends = []
        for i, v in enumerate(layers[li]):
            for s in succ[v]:
                if s in pos:
                    ends.append((i, pos[s]))
        ends.sort()
        for a in range(len(ends)):
            for b in range(a + 1, len(ends)):
                if ends[a][0] < ends[b][0] and ends[a][1] > ends[b][1]:
                    total += 1
    return total
