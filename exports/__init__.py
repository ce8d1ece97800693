"""Workshop products: print-ready maps and charts, and data downloads."""
