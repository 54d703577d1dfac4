-- holdout: the eval rows of an experiment, drawn from the pool before any arm: the n eligible rows whose id
-- hashes lowest.
-- reads:   scored(_ord, id, eligible)
-- params:  $n        BIGINT  rows to hold out (required)
--          $salt     VARCHAR changes the draw (default '')
-- returns: _ord
-- shard:   top
-- note:    keyed by id only, so the same pool gives the same eval rows whatever the arms, and exact duplicates
--          of an eval row (same id) are held out with it; `distill experiment` removes their ids from every arm
with pool as (
    select _ord, id, md5($salt || ':' || id) as draw
    from scored
    where eligible
),
picked as (
    select id from (select distinct id, draw from pool) order by draw, id limit $n
),
final as (
    select p._ord from pool p semi join picked using (id)
)
select _ord from final order by _ord
