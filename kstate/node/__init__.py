"""kstate.node (see ARCHITECTURE §4)."""
