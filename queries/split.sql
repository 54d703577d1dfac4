-- split: train/valid/test for every eligible row, from a hash of its id.
-- reads:   scored(_ord, id, eligible)
-- params:  $train    DOUBLE  share of rows in train (default 0.9)
--          $valid    DOUBLE  share of rows in valid; the rest is test (default 0.05)
-- returns: _ord, split
-- shard:   row
-- note:    u = first 8 hex digits of the id / 2^32, so a row's split never changes when rows are added,
--          and exact duplicates (same id) always land in the same split
with pool as (
    select _ord, cast('0x' || left(id, 8) as ubigint) / 4294967296.0 as u
    from scored
    where eligible
),
final as (
    select _ord, case when u < $train then 'train' when u < $train + $valid then 'valid' else 'test' end as split
    from pool
)
select _ord, split from final order by _ord
