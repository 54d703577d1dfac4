-- top_n: the n best eligible rows by sort_key.
-- reads:   scored(_ord, id, sort_key, eligible)
-- params:  $n        BIGINT  rows to keep (required)
-- returns: _ord, sel_rank
-- shard:   top
-- note:    rows without a score never qualify; ties break on id, then dataset order
with pool as (
    select _ord, id, sort_key
    from scored
    where eligible and sort_key is not null
    order by sort_key desc, id, _ord
    limit $n
),
final as (
    select _ord, row_number() over (order by sort_key desc, id, _ord) as sel_rank
    from pool
)
select _ord, sel_rank from final order by sel_rank
