"""Mining economics as pure functions: hashprice, margins, difficulty projection, power prices, curtailment."""
