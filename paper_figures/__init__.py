"""One module per figure: reads result rows, writes PNG + PDF + the CSV it plotted."""
