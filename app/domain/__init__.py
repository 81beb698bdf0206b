"""The pure core: what an order is (`snapshot`), what its events mean (`events`), what a shop has
chosen (`shop_settings`), what should stand on an order (`rules`) and what a posting may do to a
customer's balances (`postings`). No database, no HTTP, no platform: everything here is a value in,
a value out, and tested as such."""
