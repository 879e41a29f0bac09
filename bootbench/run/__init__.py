"""Running on Locust: master/worker run state, the iteration budget, sample shipping."""
