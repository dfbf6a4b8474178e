// Tokenise .net files with this grammar in VS Code's own engine (vscode-textmate + Oniguruma),
// to check a change to the grammar the way editors will run it. Not needed to use the grammar.
//
//   npm install --no-save vscode-textmate@9 vscode-oniguruma@1
//   node editors/textmate/tokenize.js editors/textmate/netspec.tmLanguage.json specs/*.net
//
// Prints, per file, the scopes of the first occurrence of every token and the tokens that got
// no scope at all ("unscoped": should be empty).
const fs = require("fs");
const path = require("path");
const vsctm = require("vscode-textmate");
const oniguruma = require("vscode-oniguruma");
const wasm = fs.readFileSync(require.resolve("vscode-oniguruma/release/onig.wasm")).buffer;
const onigLib = oniguruma.loadWASM(wasm).then(() => ({
  createOnigScanner: (p) => new oniguruma.OnigScanner(p),
  createOnigString: (s) => new oniguruma.OnigString(s),
}));
const [grammarPath, ...files] = process.argv.slice(2);
const registry = new vsctm.Registry({
  onigLib,
  loadGrammar: async () => vsctm.parseRawGrammar(fs.readFileSync(grammarPath, "utf8"), grammarPath),
});
registry.loadGrammar("source.netspec").then((grammar) => {
  const out = {};
  for (const f of files) {
    const lines = fs.readFileSync(f, "utf8").split("\n");
    let stack = vsctm.INITIAL;
    const scopes = {};
    let unscoped = [];
    for (const line of lines) {
      const r = grammar.tokenizeLine(line, stack);
      for (const t of r.tokens) {
        const text = line.substring(t.startIndex, t.endIndex);
        const s = t.scopes.slice(1).join(" ");
        if (text.trim() && !s) unscoped.push(text);
        if (text.trim() && !(text in scopes)) scopes[text] = s;
      }
      stack = r.ruleStack;
    }
    out[f] = { scopes, unscoped };
  }
  console.log(JSON.stringify(out, null, 1));
});
