"""The torch side, imported lazily: build the model, run its phases, trace them on fake tensors or measure them."""
