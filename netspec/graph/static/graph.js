// netspec graph viewer: layout, drawing, pan and zoom, details, expand and collapse.
// Self-contained (no network access). The layout functions mirror netspec/graph/layout.py and
// netspec/graph/view.py step by step, with the same arithmetic, so that this page draws what the
// SVG draws; tests/test_graph.py compares the two in a browser. Change them together.
(function () {
  "use strict";

  var SEP = 28, DUMMY_SEP = 14, GROUP_PAD = 10, GROUP_TITLE = 18, LAYER_GAP = 40, SWEEPS = 8, X_ROUNDS = 6,
    MARGIN = 20;
  var CHAR = 7.2, SMALL = 6.0, LINE = 15, PAD_X = 10, PAD_Y = 7, MAX_CHARS = 48;

  function r1(x) { return Math.floor(x * 10 + 0.5) / 10; }
  function len(s) { return Array.from(s).length; }
  function fit(s) { return len(s) <= MAX_CHARS ? s : Array.from(s).slice(0, MAX_CHARS - 1).join("") + "\u2026"; }
  function fmtInt(n) { return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, ","); }
  function sum(a) { var s = 0; for (var i = 0; i < a.length; i++) s += a[i]; return s; }
  function cmp(a, b) { for (var i = 0; i < a.length; i++) { if (a[i] < b[i]) return -1; if (a[i] > b[i]) return 1; } return 0; }

  // ---- view.py ------------------------------------------------------------------------------
  function boxLines(v) {
    var kind = v.kind, lines = [];
    if (kind === "group") {
      lines.push([fit(v.title), "main"]);
      lines.push([fit(v.subtitle), "sub"]);
    } else if (kind === "input" || kind === "output") {
      lines.push([fit(kind + " " + v.title), "main"]);
      lines.push([fit(v.shape), "sub"]);
      return lines;
    } else if (kind === "weights") {
      lines.push([fit("layer " + v.title), "main"]);
      lines.push([fit(v.attrs), "sub"]);
      lines.push([fmtInt(v.params) + " params \u00b7 shared by " + v.uses, "sub"]);
      return lines;
    } else if (kind === "error") {
      lines.push([fit(v.title), "main"]);
      lines.push([fit(v.attrs), "sub"]);
      if (v.name) lines.push([fit(v.name), "sub"]);
      return lines;
    } else {
      lines.push([fit(v.title + (v.attrs ? " " + v.attrs : "")), "main"]);
      lines.push([fit(v.name), "sub"]);
      if (v.layer) lines.push([fit("weights of " + v.layer), "sub"]);
    }
    if (v.params) lines.push([fmtInt(v.params) + " params", "sub"]);
    return lines;
  }

  function boxSize(lines) {
    var w = 0;
    lines.forEach(function (l) { w = Math.max(w, len(l[0]) * (l[1] === "main" ? CHAR : SMALL)); });
    return [r1(Math.max(w + 2 * PAD_X, 64.0)), lines.length * LINE + 2 * PAD_Y];
  }

  function ancestorsOf(data) {
    var groups = {}, out = {};
    data.groups.forEach(function (g) { groups[g.id] = g; });
    data.groups.forEach(function (g) {
      var chain = [], p = g.id;
      while (p !== null && p !== undefined) { chain.push(p); p = groups[p].parent; }
      out[g.id] = chain.reverse();
    });
    return out;
  }

  function visible(data, expanded) {
    var open = new Set(expanded), chains = ancestorsOf(data), groups = {}, rep = {}, owner = {}, boxes = [],
      seen = new Set();
    data.groups.forEach(function (g) { groups[g.id] = g; });
    data.nodes.forEach(function (v) {
      var chain = v.group ? chains[v.group] : [];
      var closed = null;
      for (var i = 0; i < chain.length; i++) if (!open.has(chain[i])) { closed = chain[i]; break; }
      if (closed === null) { rep[v.id] = v.id; owner[v.id] = chain; boxes.push(v); return; }
      var gid = "group:" + closed;
      rep[v.id] = gid;
      if (!seen.has(gid)) {
        seen.add(gid);
        var g = groups[closed];
        owner[gid] = chain.slice(0, chain.indexOf(closed));
        boxes.push({id: gid, kind: "group", group: closed, title: g.title, subtitle: g.subtitle, params: g.params,
          macs: g.macs, shape: g.shape, attrs: "", name: closed});
      }
    });
    var edges = [], keys = new Set();
    data.edges.forEach(function (e) {
      var a = rep[e.from], b = rep[e.to], key = a + "\n" + b;
      if (a === b || keys.has(key)) return;
      keys.add(key);
      edges.push({from: a, to: b, kind: e.kind, label: e.label});
    });
    return {boxes: boxes, edges: edges, owner: owner};
  }

  // ---- layout.py ----------------------------------------------------------------------------
  function common(a, b) {
    var out = [];
    for (var i = 0; i < Math.min(a.length, b.length); i++) { if (a[i] !== b[i]) break; out.push(a[i]); }
    return out;
  }

  function gap(u, v, width, groups) {
    var a = groups[u], b = groups[v], c = common(a, b).length;
    var frames = (a.length - c) + (b.length - c);
    var sep = (width[u] && width[v]) ? SEP : DUMMY_SEP;
    return width[u] / 2 + width[v] / 2 + sep + frames * GROUP_PAD;
  }

  function place(lay, want, width, groups) {
    var off = lay.map(function () { return 0.0; });
    for (var j = 1; j < lay.length; j++) off[j] = off[j - 1] + gap(lay[j - 1], lay[j], width, groups);
    var blocks = [];
    for (j = 0; j < want.length; j++) {
      blocks.push([want[j] - off[j], 1.0, j]);
      while (blocks.length > 1 && blocks[blocks.length - 2][0] / blocks[blocks.length - 2][1] >
             blocks[blocks.length - 1][0] / blocks[blocks.length - 1][1]) {
        var top = blocks.pop();
        blocks[blocks.length - 1][0] += top[0];
        blocks[blocks.length - 1][1] += top[1];
      }
    }
    var out = lay.map(function () { return 0.0; });
    for (var bi = 0; bi < blocks.length; bi++) {
      var end = bi + 1 < blocks.length ? blocks[bi + 1][2] : lay.length;
      for (j = blocks[bi][2]; j < end; j++) out[j] = blocks[bi][0] / blocks[bi][1] + off[j];
    }
    return out;
  }

  function crossings(layers, succ) {
    var total = 0;
    for (var li = 0; li < layers.length - 1; li++) {
      var pos = new Map();
      layers[li + 1].forEach(function (v, i) { pos.set(v, i); });
      var ends = [];
      layers[li].forEach(function (v, i) {
        succ[v].forEach(function (s) { if (pos.has(s)) ends.push([i, pos.get(s)]); });
      });
      ends.sort(cmp);
      for (var a = 0; a < ends.length; a++)
        for (var b = a + 1; b < ends.length; b++)
          if (ends[a][0] < ends[b][0] && ends[a][1] > ends[b][1]) total += 1;
    }
    return total;
  }

  function straighten(chains, layers, vlayer, x, width, groups) {
    var index = {};
    layers.forEach(function (lay) { lay.forEach(function (v, j) { index[v] = j; }); });
    chains.forEach(function (chain) {
      var dummies = chain.slice(1, -1);
      if (dummies.length < 2) return;
      var xs = dummies.map(function (v) { return x[v]; }).sort(function (a, b) { return a - b; });
      var target = xs[Math.floor(xs.length / 2)], fits = true;
      dummies.forEach(function (v) {
        var lay = layers[vlayer[v]], j = index[v];
        if (j > 0 && target - x[lay[j - 1]] < gap(lay[j - 1], v, width, groups) - 1e-9) fits = false;
        if (j + 1 < lay.length && x[lay[j + 1]] - target < gap(v, lay[j + 1], width, groups) - 1e-9) fits = false;
      });
      if (fits) dummies.forEach(function (v) { x[v] = target; });
    });
  }

  function topoOrder(n, succ, pred) {
    var indeg = pred.map(function (p) { return p.length; }), ready = [], out = [], seen = [];
    for (var i = 0; i < n; i++) { seen.push(false); if (indeg[i] === 0) ready.push(i); }
    while (ready.length) {
      var k = 0;
      for (var j = 1; j < ready.length; j++) if (ready[j] < ready[k]) k = j;
      i = ready.splice(k, 1)[0];
      out.push(i);
      seen[i] = true;
      succ[i].forEach(function (s) { indeg[s] -= 1; if (indeg[s] === 0) ready.push(s); });
    }
    for (i = 0; i < n; i++) if (!seen[i]) out.push(i);
    return out;
  }

  function layout(nodes, edges, ancestors) {
    var n = nodes.length, index = {}, succ = [], pred = [], i, li, v;
    nodes.forEach(function (v, i) { index[v.id] = i; succ.push([]); pred.push([]); });
    edges.forEach(function (e) { var a = index[e.from], b = index[e.to]; succ[a].push(b); pred[b].push(a); });
    // 1. layers
    var layer = nodes.map(function () { return 0; });
    topoOrder(n, succ, pred).forEach(function (i) {
      pred[i].forEach(function (p) { layer[i] = Math.max(layer[i], layer[p] + 1); });
    });
    for (i = 0; i < n; i++) {
      if (!pred[i].length && nodes[i].kind !== "input" && succ[i].length) {
        layer[i] = Math.max(0, Math.min.apply(null, succ[i].map(function (s) { return layer[s]; })) - 1);
      }
    }
    var last = 0;
    for (i = 0; i < n; i++) if (nodes[i].kind !== "output") last = Math.max(last, layer[i]);
    for (i = 0; i < n; i++) if (nodes[i].kind === "output") layer[i] = last + 1;
    var depth = n ? Math.max.apply(null, layer) + 1 : 0;
    // 2. dummies
    var vlayer = layer.slice(), vwidth = nodes.map(function (v) { return v.w; });
    var vgroups = nodes.map(function (v) { return ancestors[v.id] || []; });
    var vkey = nodes.map(function (v, i) { return i; }), vsucc = nodes.map(function () { return []; });
    var vpred = nodes.map(function () { return []; }), chains = [];
    edges.forEach(function (e, k) {
      var a = index[e.from], b = index[e.to], chain = [a], com = common(vgroups[a], vgroups[b]);
      for (var lay = layer[a] + 1; lay < layer[b]; lay++) {
        vlayer.push(lay); vwidth.push(0); vgroups.push(com); vkey.push(a + (k + 1) / (edges.length + 1));
        vsucc.push([]); vpred.push([]); chain.push(vlayer.length - 1);
      }
      chain.push(b);
      for (var j = 0; j + 1 < chain.length; j++) { vsucc[chain[j]].push(chain[j + 1]); vpred[chain[j + 1]].push(chain[j]); }
      chains.push(chain);
    });
    var m = vlayer.length;
    // 3. order
    var layers = [];
    for (li = 0; li < depth; li++) layers.push([]);
    var all = [];
    for (v = 0; v < m; v++) all.push(v);
    all.sort(function (a, b) { return cmp([vkey[a], a], [vkey[b], b]); });
    all.forEach(function (v) { layers[vlayer[v]].push(v); });
    var best = layers.map(function (l) { return l.slice(); }), bestCross = crossings(layers, vsucc);
    for (var sweep = 0; sweep < SWEEPS; sweep++) {
      var down = sweep % 2 === 0;
      for (li = down ? 1 : depth - 2; down ? li < depth : li >= 0; li += down ? 1 : -1) {
        var ref = down ? layers[li - 1] : layers[li + 1], pos = new Map();
        ref.forEach(function (v, i) { pos.set(v, i); });
        var keyed = layers[li].map(function (v, i) {
          var nb = (down ? vpred[v] : vsucc[v]).filter(function (u) { return pos.has(u); })
            .map(function (u) { return pos.get(u); });
          return [nb.length ? sum(nb) / nb.length : i, i, v];
        });
        keyed.sort(function (a, b) { return cmp([a[0], a[1]], [b[0], b[1]]); });
        layers[li] = keyed.map(function (t) { return t[2]; });
      }
      var c = crossings(layers, vsucc);
      if (c < bestCross) { bestCross = c; best = layers.map(function (l) { return l.slice(); }); }
    }
    layers = best;
    // 4. x
    var x = [];
    for (v = 0; v < m; v++) x.push(0.0);
    layers.forEach(function (lay) {
      var cur = 0.0;
      lay.forEach(function (v, j) { if (j) cur += gap(lay[j - 1], v, vwidth, vgroups); x[v] = cur; });
    });
    for (var rnd = 0; rnd < X_ROUNDS; rnd++) {
      [true, false].forEach(function (down) {
        for (var li = down ? 1 : depth - 2; down ? li < depth : li >= 0; li += down ? 1 : -1) {
          var lay = layers[li];
          var want = lay.map(function (v) {
            var nb = down ? vpred[v] : vsucc[v];
            if (rnd === X_ROUNDS - 1) nb = vpred[v].concat(vsucc[v]);
            return nb.length ? sum(nb.map(function (u) { return x[u]; })) / nb.length : x[v];
          });
          var placed = place(lay, want, vwidth, vgroups);
          lay.forEach(function (v, j) { x[v] = placed[j]; });
        }
      });
    }
    straighten(chains, layers, vlayer, x, vwidth, vgroups);
    var left = null;
    for (v = 0; v < m; v++) {
      var l = x[v] - vwidth[v] / 2 - GROUP_PAD * vgroups[v].length;
      if (left === null || l < left) left = l;
    }
    if (left === null) left = 0.0;
    for (v = 0; v < m; v++) x[v] = x[v] - left + MARGIN;
    // 5. y
    var heights = [], starts = [], ends = [], tops = {}, bottoms = {};
    for (li = 0; li < depth; li++) { heights.push(0); starts.push(0); ends.push(0); }
    for (i = 0; i < n; i++) heights[layer[i]] = Math.max(heights[layer[i]], nodes[i].h);
    for (i = 0; i < n; i++) {
      vgroups[i].forEach(function (g) {
        tops[g] = Math.min(g in tops ? tops[g] : layer[i], layer[i]);
        bottoms[g] = Math.max(g in bottoms ? bottoms[g] : layer[i], layer[i]);
      });
    }
    for (i = 0; i < n; i++) {
      var L = layer[i];
      starts[L] = Math.max(starts[L], vgroups[i].filter(function (g) { return tops[g] === L; }).length);
      ends[L] = Math.max(ends[L], vgroups[i].filter(function (g) { return bottoms[g] === L; }).length);
    }
    var top = [], y0 = MARGIN;
    for (li = 0; li < depth; li++) {
      y0 += starts[li] * (GROUP_PAD + GROUP_TITLE);
      top.push(y0);
      y0 += heights[li] + ends[li] * GROUP_PAD + LAYER_GAP;
    }
    var height = y0 - LAYER_GAP + MARGIN, posOut = {}, routes = [];
    for (i = 0; i < n; i++) posOut[nodes[i].id] = [r1(x[i]), r1(top[layer[i]] + heights[layer[i]] / 2)];
    chains.forEach(function (chain) {
      var pts = [];
      chain.slice(1, -1).forEach(function (v) {
        var li = vlayer[v];
        pts.push([r1(x[v]), r1(top[li])]);
        pts.push([r1(x[v]), r1(top[li] + heights[li])]);
      });
      routes.push(pts);
    });
    var width = null;
    for (v = 0; v < m; v++) {
      var rr = x[v] + vwidth[v] / 2 + GROUP_PAD * vgroups[v].length;
      if (width === null || rr > width) width = rr;
    }
    width = (width === null ? 0.0 : width) + MARGIN;
    return {pos: posOut, routes: routes, width: r1(width), height: r1(height)};
  }

  function scene(data, expanded) {
    var vis = visible(data, expanded), edges = vis.edges, owner = vis.owner;
    var laid = vis.boxes.map(function (v) {
      var lines = boxLines(v), wh = boxSize(lines);
      return {id: v.id, kind: v.kind, w: wh[0], h: wh[1], lines: lines};
    });
    var result = layout(laid, edges, owner), byId = {};
    var nodes = laid.map(function (v) {
      var p = result.pos[v.id];
      var out = {id: v.id, kind: v.kind, x: p[0], y: p[1], w: v.w, h: v.h, lines: v.lines};
      byId[v.id] = out;
      return out;
    });
    var incoming = new Map(), entry = {};
    edges.forEach(function (e, k) { if (!incoming.has(e.to)) incoming.set(e.to, []); incoming.get(e.to).push(k); });
    incoming.forEach(function (ks, to) {
      var t = byId[to];
      var sx = function (k) { var r = result.routes[k]; return [r.length ? r[r.length - 1][0] : byId[edges[k].from].x, k]; };
      ks = ks.slice().sort(function (a, b) { return cmp(sx(a), sx(b)); });
      var step = Math.min(16.0, t.w / (ks.length + 1));
      ks.forEach(function (k, j) { entry[k] = r1(t.x + (j - (ks.length - 1) / 2) * step); });
    });
    var outEdges = [], labels = [], labelled = new Set();
    edges.forEach(function (e, k) {
      var s = byId[e.from], t = byId[e.to];
      var pts = [[s.x, r1(s.y + s.h / 2)]].concat(result.routes[k], [[entry[k], r1(t.y - t.h / 2)]]);
      outEdges.push({from: e.from, to: e.to, kind: e.kind, points: pts});
      if (e.label && !labelled.has(e.from) && e.kind !== "weights") {
        labelled.add(e.from);
        labels.push({x: r1(s.x + 6), y: r1(s.y + s.h / 2 + 13), text: e.label});
      }
    });
    return {width: result.width, height: result.height, nodes: nodes, edges: outEdges, labels: labels,
      groups: frames(data, expanded, nodes, owner)};
  }

  function frames(data, expanded, nodes, owner) {
    var open = new Set(expanded), boxes = {}, depth = {};
    nodes.forEach(function (v) {
      var chain = owner[v.id] || [];
      chain.forEach(function (g, level) {
        var inner = chain.length - level;
        var x0 = v.x - v.w / 2 - GROUP_PAD * inner, x1 = v.x + v.w / 2 + GROUP_PAD * inner;
        var y0 = v.y - v.h / 2 - (GROUP_PAD + GROUP_TITLE) * inner, y1 = v.y + v.h / 2 + GROUP_PAD * inner;
        var b = boxes[g];
        if (!b) { boxes[g] = [x0, y0, x1, y1]; depth[g] = level; }
        else { b[0] = Math.min(b[0], x0); b[1] = Math.min(b[1], y0); b[2] = Math.max(b[2], x1); b[3] = Math.max(b[3], y1); }
      });
    });
    var out = [];
    data.groups.forEach(function (g) {
      if (boxes[g.id] && open.has(g.id)) {
        var b = boxes[g.id];
        out.push({id: g.id, title: g.title, level: depth[g.id], x: r1(b[0]), y: r1(b[1]), w: r1(b[2] - b[0]),
          h: r1(b[3] - b[1])});
      }
    });
    out.sort(function (a, b) { return a.level - b.level; });  // stable, as Python's sort
    return out;
  }

  // ---- drawing (svg.py) ---------------------------------------------------------------------
  function esc(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")
      .replace(/'/g, "&#x27;");
  }

  function pathD(points) {
    var x = points[0][0], y = points[0][1], d = ["M" + x + "," + y];
    points.slice(1).forEach(function (p) {
      if (p[0] === x) d.push("L" + p[0] + "," + p[1]);
      else { var m = r1((y + p[1]) / 2); d.push("C" + x + "," + m + " " + p[0] + "," + m + " " + p[0] + "," + p[1]); }
      x = p[0]; y = p[1];
    });
    return d.join(" ");
  }

  function nodeSvg(v) {
    var x0 = r1(v.x - v.w / 2), y0 = r1(v.y - v.h / 2);
    var rx = {merge: 16, input: 12, output: 12}[v.kind] || 5;
    var parts = ['<g class="box k-' + v.kind + '" data-id="' + esc(v.id) + '" tabindex="0">',
      "<title>" + esc(v.lines.map(function (l) { return l[0]; }).join(" \u00b7 ")) + "</title>",
      '<rect x="' + x0 + '" y="' + y0 + '" width="' + v.w + '" height="' + v.h + '" rx="' + rx + '"/>'];
    v.lines.forEach(function (l, i) {
      var ty = r1(y0 + 7 + 15 * i + 11), weight = (i === 0 && l[1] === "main") ? ' font-weight="bold"' : "";
      parts.push('<text class="' + l[1] + '" x="' + v.x + '" y="' + ty + '" text-anchor="middle"' + weight + ">" +
        esc(l[0]) + "</text>");
    });
    parts.push("</g>");
    return parts.join("");
  }

  function renderSvg(sc) {
    var out = ['<svg xmlns="http://www.w3.org/2000/svg" class="ns-graph" id="ns-svg" viewBox="0 0 ' + sc.width + " " +
      sc.height + '" font-family="monospace">'];
    out.push('<defs><marker id="ns-arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" ' +
      'orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#52606d"/></marker></defs>');
    out.push('<rect width="' + sc.width + '" height="' + sc.height + '" fill="#ffffff"/>');
    sc.groups.forEach(function (f) {
      out.push('<g class="frame" data-group="' + esc(f.id) + '"><rect x="' + f.x + '" y="' + f.y + '" width="' + f.w +
        '" height="' + f.h + '" rx="8"/><text x="' + r1(f.x + 8) + '" y="' + r1(f.y + 15) + '">' + esc(f.title) +
        " \u2212</text></g>");
    });
    sc.edges.forEach(function (e) {
      out.push('<path class="edge e-' + e.kind + '" d="' + pathD(e.points) + '" marker-end="url(#ns-arrow)" data-from="' +
        esc(e.from) + '" data-to="' + esc(e.to) + '"/>');
    });
    sc.labels.forEach(function (l) { out.push('<text class="shape" x="' + l.x + '" y="' + l.y + '">' + esc(l.text) + "</text>"); });
    sc.nodes.forEach(function (v) { out.push(nodeSvg(v)); });
    out.push("</svg>");
    return out.join("\n");
  }

  // ---- the page -----------------------------------------------------------------------------
  var payload = JSON.parse(document.getElementById("ns-data").textContent);
  var data = payload.data, nodesById = {}, groupsById = {}, inputsOf = {};
  data.nodes.forEach(function (v) { nodesById[v.id] = v; });
  data.groups.forEach(function (g) { groupsById[g.id] = g; });
  data.edges.forEach(function (e) { (inputsOf[e.to] = inputsOf[e.to] || []).push(e); });
  var state = {expanded: payload.expanded.slice(), scene: null, view: null, selected: null};
  var stage = document.getElementById("ns-stage"), panel = document.getElementById("ns-details");

  function draw() {
    state.scene = scene(data, state.expanded);
    stage.innerHTML = renderSvg(state.scene);
    if (!state.view) start();
    else applyView();
    if (state.selected) mark(state.selected);
  }

  function applyView() {
    var s = document.getElementById("ns-svg"), v = state.view;
    s.setAttribute("viewBox", v.x + " " + v.y + " " + v.w + " " + v.h);
  }

  function fitView() {
    var sc = state.scene, r = stage.getBoundingClientRect();
    var aspect = (r.width || 800) / (r.height || 600);
    var w = sc.width, h = sc.height;
    if (w / h < aspect) w = h * aspect; else h = w / aspect;
    state.view = {x: (sc.width - w) / 2, y: (sc.height - h) / 2, w: w, h: h};
    applyView();
  }

  // the first view: the drawing's width at most at natural size, its top in view
  function start() {
    var sc = state.scene, r = stage.getBoundingClientRect();
    var sw = r.width || 800, sh = r.height || 600, scale = Math.min(1, sw / sc.width);
    state.view = {x: (sc.width - sw / scale) / 2, y: 0, w: sw / scale, h: sh / scale};
    applyView();
  }

  function zoom(factor, cx, cy) {
    var v = state.view, r = stage.getBoundingClientRect();
    var px = v.x + (cx - r.left) / r.width * v.w, py = v.y + (cy - r.top) / r.height * v.h;
    v.w *= factor; v.h *= factor;
    v.x = px - (cx - r.left) / r.width * v.w;
    v.y = py - (cy - r.top) / r.height * v.h;
    applyView();
  }

  function mark(id) {
    Array.prototype.forEach.call(stage.querySelectorAll(".box.selected"), function (b) { b.classList.remove("selected"); });
    Array.prototype.forEach.call(stage.querySelectorAll(".box"), function (b) {
      if (b.getAttribute("data-id") === id) b.classList.add("selected");
    });
  }

  function row(k, v) { return "<tr><th>" + esc(k) + "</th><td>" + v + "</td></tr>"; }

  function details(id) {
    state.selected = id;
    mark(id);
    var html = [];
    if (id.indexOf("group:") === 0) {
      var g = groupsById[id.slice(6)];
      html.push("<h2>" + esc(g.title) + "</h2><table>");
      html.push(row("kind", g.kind === "repeat" ? "repeated block (" + g.count + " instances)" : "block instance"));
      if (g.block) html.push(row("block", esc(g.block)));
      html.push(row("layers", fmtInt(g.size)));
      html.push(row("output", "<code>" + esc(g.shape) + "</code>"));
      html.push(row("params", fmtInt(g.params)));
      html.push(row("MACs", fmtInt(g.macs)));
      html.push("</table><button id=\"ns-toggle\" data-group=\"" + esc(g.id) + "\">expand</button>");
    } else {
      var v = nodesById[id];
      html.push("<h2>" + esc(v.kind === "weights" ? "layer " + v.title : v.title) + "</h2><table>");
      html.push(row("name", "<code>" + esc(v.name) + "</code>"));
      html.push(row("op", esc(v.op)));
      var ins = (inputsOf[id] || []).filter(function (e) { return e.kind === "data"; });
      if (ins.length) {
        html.push(row("inputs", ins.map(function (e) {
          return "<code>" + esc(e.from) + "</code> " + esc(e.label);
        }).join("<br>")));
      }
      if (v.shape) html.push(row("output", "<code>" + esc(v.shape) + "</code>"));
      html.push(row("params", fmtInt(v.params) + (v.layer ? " (weights of shared layer <code>" + esc(v.layer) + "</code>)" : "")));
      html.push(row("MACs", fmtInt(v.macs)));
      var d = v.details || {};
      if (d.weights && d.weights.length) html.push(row("weights", d.weights.map(esc).join("<br>")));
      if (d.attributes && d.attributes.length) html.push(row("attributes", d.attributes.map(esc).join("<br>")));
      if (d.message) html.push(row("error", esc(d.message)));
      if (v.group) html.push(row("in block", "<code>" + esc(v.group) + "</code>"));
      if (v.span) {
        html.push(row("source", "<code>" + esc(v.span.file + ":" + v.span.line + ":" + v.span.col) + "</code>" +
          (v.source !== null && v.source !== undefined ? "<pre>" + esc(v.source) + "</pre>" : "")));
      }
      html.push("</table>");
    }
    panel.innerHTML = html.join("");
    panel.hidden = false;
    var t = document.getElementById("ns-toggle");
    if (t) t.addEventListener("click", function () { toggle(t.getAttribute("data-group")); });
  }

  function toggle(gid) {
    var i = state.expanded.indexOf(gid);
    if (i >= 0) {
      // closing a group closes what it holds
      state.expanded = state.expanded.filter(function (g) { return !isInside(g, gid); });
    } else {
      state.expanded.push(gid);
      state.expanded.sort();
    }
    state.selected = null;
    panel.hidden = true;
    draw();
  }

  function isInside(g, outer) {
    while (g !== null && g !== undefined) { if (g === outer) return true; g = groupsById[g].parent; }
    return false;
  }

  function setAll(open) {
    state.expanded = open ? data.groups.map(function (g) { return g.id; }).sort() : [];
    draw();
    fitView();
  }

  var drag = null;
  stage.addEventListener("mousedown", function (ev) { drag = {x: ev.clientX, y: ev.clientY, moved: false}; });
  window.addEventListener("mousemove", function (ev) {
    if (!drag) return;
    if (!(ev.buttons & 1)) { drag = null; return; }  // moving with no button held: not a drag
    var dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
    if (!drag.moved) return;
    var r = stage.getBoundingClientRect();
    state.view.x -= dx / r.width * state.view.w;
    state.view.y -= dy / r.height * state.view.h;
    drag.x = ev.clientX; drag.y = ev.clientY;
    applyView();
  });
  window.addEventListener("mouseup", function () { setTimeout(function () { drag = null; }, 0); });
  stage.addEventListener("wheel", function (ev) {
    ev.preventDefault();
    zoom(ev.deltaY > 0 ? 1.15 : 1 / 1.15, ev.clientX, ev.clientY);
  }, {passive: false});
  stage.addEventListener("click", function (ev) {
    if (drag && drag.moved) return;
    var box = ev.target.closest ? ev.target.closest(".box") : null;
    var frame = ev.target.closest ? ev.target.closest(".frame") : null;
    if (box) details(box.getAttribute("data-id"));
    else if (frame && ev.target.tagName === "text") toggle(frame.getAttribute("data-group"));
  });
  stage.addEventListener("dblclick", function (ev) {
    var box = ev.target.closest ? ev.target.closest(".box") : null;
    if (box && box.getAttribute("data-id").indexOf("group:") === 0) toggle(box.getAttribute("data-id").slice(6));
  });
  stage.addEventListener("keydown", function (ev) {
    var box = ev.target.closest ? ev.target.closest(".box") : null;
    if (box && ev.key === "Enter") details(box.getAttribute("data-id"));
  });
  document.getElementById("ns-fit").addEventListener("click", fitView);
  document.getElementById("ns-zoom-in").addEventListener("click", function () {
    var r = stage.getBoundingClientRect(); zoom(1 / 1.25, r.left + r.width / 2, r.top + r.height / 2);
  });
  document.getElementById("ns-zoom-out").addEventListener("click", function () {
    var r = stage.getBoundingClientRect(); zoom(1.25, r.left + r.width / 2, r.top + r.height / 2);
  });
  document.getElementById("ns-expand-all").addEventListener("click", function () { setAll(true); });
  document.getElementById("ns-collapse-all").addEventListener("click", function () { setAll(false); });
  document.getElementById("ns-reset").addEventListener("click", function () {
    state.expanded = payload.expanded.slice(); draw(); fitView();
  });
  window.addEventListener("resize", fitView);

  draw();
  window.netspecGraph = {
    scene: function () { return state.scene; }, expanded: function () { return state.expanded.slice(); },
    select: details, toggle: toggle, layoutScene: scene
  };
})();
