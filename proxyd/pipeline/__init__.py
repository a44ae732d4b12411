"""The request pipeline: auth → model-route → translate → dispatch → stream-rewrite over one Exchange."""
