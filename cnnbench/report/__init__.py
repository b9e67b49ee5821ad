"""The report layer: rendering only. Results become a layout of sections, tables and figures, and each output
format (markdown, terminal, HTML) is one renderer over that layout."""
