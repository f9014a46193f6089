"""kstate.control (see ARCHITECTURE §4)."""
