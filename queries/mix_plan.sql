-- mix_plan: rows to take per domain for a mix of n rows at the mix table's shares.
-- reads:   mix_available(domain, available), mix(domain, share)
-- params:  $n            BIGINT   total rows wanted (required)
--          $redistribute BOOLEAN  give a short domain's shortfall to the others in proportion to their shares (default true)
-- returns: domain, share, target_rows, available, quota, shortfall
-- before:  mix_available
-- note:    targets are share * n rounded by largest remainder, so they sum to n and each is within one row of
--          share * n; redistribution fills domains in proportion to their shares up to what they have
--          (water-filling), again rounded by largest remainder; ties break on domain
with shares as (
    select domain, share / sum(share) over () as share
    from mix
    where share > 0
),
pool as (
    select s.domain, s.share, coalesce(a.available, 0) as available
    from shares s left join mix_available a using (domain)
),
targets as (
    select
        *,
        floor(share * $n + 1e-9)::bigint
        + case
            when row_number() over (order by share * $n - floor(share * $n + 1e-9) desc, domain)
                <= $n - sum(floor(share * $n + 1e-9)::bigint) over () then 1
            else 0
        end as target_rows
    from pool
),
total as (
    select least($n, sum(available)) as rows_wanted from pool
),
fill as (
    -- rows taken when every domain is filled to level lam (rows = lam * share * n, capped by what it has)
    select b.available / (b.share * $n) as lam, sum(least(p.available, b.available / (b.share * $n) * p.share * $n)) as filled
    from pool b cross join pool p
    group by b.domain, b.available, b.share
),
level as (
    select coalesce(max(lam) filter (where filled <= (select rows_wanted from total)), 0) as lam0 from fill
),
water as (
    select
        p.*,
        p.available <= (select lam0 from level) * p.share * $n as saturated
    from pool p
),
spread as (
    select
        w.*,
        case
            when w.saturated then w.available::double
            else ((select rows_wanted from total) - sum(case when w.saturated then w.available else 0 end) over ())
                / nullif(sum(case when w.saturated then 0 else w.share end) over (), 0) * w.share
        end as x
    from water w
),
filled as (
    select
        *,
        least(floor(x + 1e-9)::bigint, available)
        + case
            when not saturated
                and row_number() over (order by saturated, x - floor(x + 1e-9) desc, domain)
                    <= (select rows_wanted from total) - sum(least(floor(x + 1e-9)::bigint, available)) over ()
                then 1
            else 0
        end as refill
    from spread
),
final as (
    select
        domain,
        share,
        target_rows,
        available,
        case when $redistribute then refill else least(target_rows, available) end as quota
    from filled join targets using (domain, share, available)
)
select domain, share, target_rows, available, quota, greatest(target_rows - quota, 0) as shortfall
from final
order by domain
