"""Every piece of generated prose and Markdown: the stages' Markdown tables, the README's and the docs
pages' generated blocks (:mod:`unfolded.report.blocks`), and the HTML report's pages
(:mod:`unfolded.report.pages`). Nothing here computes a result: each renderer reads tables."""
