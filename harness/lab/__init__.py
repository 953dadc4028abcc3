"""The lab room: a lab as data (model, schema, file parsing and checks), the builder that makes
it in the kernel, the live lab the tests hold, its reproducer script and topology diagram, the
documents' own shell commands (docshell), and the bundled labs themselves (data/).

Data flows lab file -> model -> build -> LiveLab; imports run towards harness.kernel."""
