-- pool: every eligible row (an experiment's whole-pool arm; with `equal_size = false` it keeps them all).
-- reads:   scored(_ord, eligible)
-- params:  none
-- returns: _ord
-- shard:   row
with final as (
    select _ord from scored where eligible
)
select _ord from final order by _ord
