"""Studies: named experiments composing evaluators over their models, and their results pages."""
