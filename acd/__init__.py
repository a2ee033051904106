"""Pure ACD logic: queues, agents, routing, statistics, Erlang C. No I/O, no clock reads."""
