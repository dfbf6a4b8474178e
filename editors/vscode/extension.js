// netspec for VS Code: the TextMate grammar (package.json) and `netspec lsp` over stdio.
"use strict";

const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const config = vscode.workspace.getConfiguration("netspec");
  const command = config.get("server.command", "netspec");
  const args = config.get("server.args", ["lsp"]);
  const server = { command, args, transport: TransportKind.stdio };
  client = new LanguageClient(
    "netspec",
    "netspec",
    { run: server, debug: server },
    {
      documentSelector: [
        { scheme: "file", language: "netspec" },
        { scheme: "untitled", language: "netspec" },
      ],
    },
  );
  client.start().catch((err) => {
    vscode.window.showErrorMessage(
      `netspec: cannot start '${command} ${args.join(" ")}' (${err.message}). ` +
        "Install the server with: pip install 'netspec[lsp]', or set netspec.server.command.",
    );
  });
  context.subscriptions.push({ dispose: () => client && client.stop() });
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
