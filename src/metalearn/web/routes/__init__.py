"""One router per page (or pair of a page and its form)."""
