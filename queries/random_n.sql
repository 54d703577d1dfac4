-- random_n: n eligible rows drawn at random, reproducibly from a seed (the control arm of an experiment).
-- reads:   scored(_ord, id, eligible)
-- params:  $n        BIGINT  rows to draw (required)
--          $seed     BIGINT  which draw (default 0); the same seed gives the same rows
-- returns: _ord, sel_rank
-- shard:   top
-- note:    rows are ordered by md5(seed, id, _ord), stable across DuckDB versions and partitionings
with pool as (
    select _ord, md5(cast($seed as varchar) || ':' || id || ':' || cast(_ord as varchar)) as draw
    from scored
    where eligible
    order by draw
    limit $n
),
final as (
    select _ord, row_number() over (order by draw) as sel_rank
    from pool
)
select _ord, sel_rank from final order by sel_rank
