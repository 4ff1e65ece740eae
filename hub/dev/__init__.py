"""Development tools: the traffic simulator, the embedded broker and Postgres, scratch databases."""
