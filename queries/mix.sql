-- mix: the rows of a mix, the best-scored of each domain first, as many as mix_plan's quota.
-- reads:   scored(_ord, id, domain, sort_key, eligible), mix_plan(domain, quota)
-- params:  (none; mix_plan's $n and $redistribute size the quotas)
-- returns: _ord, sel_rank
-- shard:   domain
-- before:  mix_plan
-- note:    every row has one domain and one _ord, so no row is ever picked twice; sel_rank is the rank
--          inside the domain; ties break on id
with ranked as (
    select
        s._ord,
        s.domain,
        row_number() over (partition by s.domain order by s.sort_key desc, s.id, s._ord) as sel_rank
    from scored s
    semi join mix_plan p using (domain)
    where s.eligible and s.sort_key is not null
),
final as (
    select r._ord, r.sel_rank
    from ranked r
    join mix_plan p using (domain)
    where r.sel_rank <= p.quota
)
select _ord, sel_rank from final order by _ord
