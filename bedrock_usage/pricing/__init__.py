"""List prices for Bedrock tokens: the shipped snapshot, AWS's Price List offer files, and
the rows of the warehouse's `bedrock_prices` table they become."""
