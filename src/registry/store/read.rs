//! Reading registry tables into a [`Registry`]: whole, per list, or the rows a scope names.

use super::*;

pub(super) fn read_registry(
    tx: &redb::ReadTransaction,
    set: RegistryTables,
) -> Result<Registry, RowError> {
    read_tables(tx, set, None)
}

/// `read_registry`, of only the tables behind `lists` (and the small tables) when given.
pub(super) fn read_tables(
    tx: &redb::ReadTransaction,
    set: RegistryTables,
    lists: Option<&std::collections::BTreeSet<ListKind>>,
) -> Result<Registry, RowError> {
    read_tables_with(tx, set, lists, None)
}

/// [`read_tables`], with the Zorgaanbieders given instead of read, if they are.
pub(super) fn read_tables_with(
    tx: &redb::ReadTransaction,
    set: RegistryTables,
    lists: Option<&std::collections::BTreeSet<ListKind>>,
    zorgaanbieders: Option<BTreeMap<String, crate::registry::model::Zorgaanbieder>>,
) -> Result<Registry, RowError> {
    let wanted = |l: ListKind| lists.is_none_or(|s| s.contains(&l));
    let mut whitelist = std::collections::BTreeSet::new();
    if wanted(ListKind::Whitelist) {
        for row in tx.open_table(set.whitelist)?.iter()? {
            whitelist.insert(row?.0.value().to_string());
        }
    }
    let mut reg = Registry {
        zorgaanbieders: match (wanted(ListKind::Zorgaanbiederslijst), zorgaanbieders) {
            (true, Some(given)) => given,
            (true, None) => all_rows_spread(tx, set.zorgaanbieders)?,
            (false, _) => BTreeMap::new(),
        },
        oauthclients: match wanted(ListKind::OAuthclientlist) {
            true => all_rows(tx, set.oauthclients)?,
            false => BTreeMap::new(),
        },
        whitelist,
        gegevensdiensten: all_rows(tx, set.gegevensdiensten)?,
        livegangen: all_rows(tx, set.livegangen)?,
    };
    // Rows written before canonical order existed are read in it.
    reg.canonicalize();
    Ok(reg)
}

/// `rows` with the rows of `keys` as `set` holds them now: decoded, or gone.
pub(super) fn warm_rows(
    tx: &redb::ReadTransaction,
    set: RegistryTables,
    mut rows: BTreeMap<String, crate::registry::model::Zorgaanbieder>,
    keys: &std::collections::BTreeSet<String>,
) -> Result<BTreeMap<String, crate::registry::model::Zorgaanbieder>, RowError> {
    let t = tx.open_table(set.zorgaanbieders)?;
    for k in keys {
        match t.get(k.as_str())? {
            Some(v) => rows.insert(k.clone(), decode(set.zorgaanbieders, k, v.value())?),
            None => rows.remove(k),
        };
    }
    Ok(rows)
}

/// Every row of a table of records, decoded.
pub(super) fn all_rows<T: for<'a> Deserialize<'a>>(
    tx: &redb::ReadTransaction,
    t: Rows,
) -> Result<BTreeMap<String, T>, RowError> {
    let mut out = BTreeMap::new();
    for row in tx.open_table(t)?.iter()? {
        let (k, v) = row?;
        out.insert(k.value().to_string(), decode(t, k.value(), v.value())?);
    }
    Ok(out)
}

/// [`all_rows`] of a table of up to 100,000 rows, read on every core: the keys are cut
/// into ranges by their first two letters (a Zorgaanbiedernaam is `[a-z]+@medmij`; other
/// keys fall in the first or last range), each walked and decoded by whichever thread is
/// free, all in the caller's one read transaction. At 100k, reading on one core was the
/// half second before a publication could use the second core.
pub(super) fn all_rows_spread<T: for<'a> Deserialize<'a> + Send>(
    tx: &redb::ReadTransaction,
    t: Rows,
) -> Result<BTreeMap<String, T>, RowError> {
    let mut bounds = vec![String::new()];
    for a in 'a'..='z' {
        for b in 'a'..='z' {
            bounds.push(format!("{a}{b}"));
        }
    }
    let ranges: Vec<(&str, Option<&str>)> = bounds
        .iter()
        .enumerate()
        .map(|(i, lo)| (lo.as_str(), bounds.get(i + 1).map(String::as_str)))
        .collect();
    let parts = crate::cores::map(&ranges, |_, &(lo, hi)| {
        let table = tx.open_table(t)?;
        let rows = match hi {
            Some(hi) => table.range::<&str>(lo..hi)?,
            None => table.range::<&str>(lo..)?,
        };
        rows.map(|row| {
            let (k, v) = row?;
            Ok((k.value().to_string(), decode(t, k.value(), v.value())?))
        })
        .collect::<Result<Vec<(String, T)>, RowError>>()
    });
    let mut out = Vec::new();
    for part in parts {
        out.extend(part.ok_or_else(|| decode_err(t, "?", &"a reading thread panicked"))??);
    }
    // In key order already: the map is built in one pass.
    Ok(out.into_iter().collect())
}

/// The rows `scope` names (those that exist) and the small tables, from any transaction.
/// `open` and `open_whitelist` open a working table in the caller's read or write
/// transaction.
pub(super) fn read_rows<T, W>(
    open: impl Fn(TableDefinition<'static, &'static str, &'static [u8]>) -> Result<T, redb::TableError>,
    open_whitelist: impl FnOnce() -> Result<W, redb::TableError>,
    scope: &Scope,
    e: &dyn Fn(RowError) -> StoreError,
) -> Result<Registry, StoreError>
where
    T: ReadableTable<&'static str, &'static [u8]>,
    W: ReadableTable<&'static str, ()>,
{
    type ErrFn<'a> = &'a dyn Fn(RowError) -> StoreError;
    fn named<T: for<'a> Deserialize<'a>>(
        t: &impl ReadableTable<&'static str, &'static [u8]>,
        keys: &[String],
        e: ErrFn,
    ) -> Result<BTreeMap<String, T>, StoreError> {
        let mut out = BTreeMap::new();
        for k in keys {
            if let Some(v) = t.get(k.as_str()).map_err(|x| e(x.into()))? {
                out.insert(k.clone(), from_json(k, v.value())?);
            }
        }
        Ok(out)
    }
    fn all<T: for<'a> Deserialize<'a>>(
        t: &impl ReadableTable<&'static str, &'static [u8]>,
        e: ErrFn,
    ) -> Result<BTreeMap<String, T>, StoreError> {
        let mut out = BTreeMap::new();
        for row in t.iter().map_err(|x| e(x.into()))? {
            let (k, v) = row.map_err(|x| e(x.into()))?;
            out.insert(k.value().to_string(), from_json(k.value(), v.value())?);
        }
        Ok(out)
    }
    let Scope::Rows {
        zorgaanbieders: za,
        oauthclients: oc,
        whitelist: wl,
    } = scope
    else {
        return Err(StoreError::Corrupt("read_rows needs named rows".into()));
    };
    let table = |d| open(d).map_err(|x| e(x.into()));
    let whitelist = open_whitelist().map_err(|x| e(x.into()))?;
    let mut hosts = std::collections::BTreeSet::new();
    for h in wl {
        if whitelist
            .get(h.as_str())
            .map_err(|x| e(x.into()))?
            .is_some()
        {
            hosts.insert(h.clone());
        }
    }
    let mut reg = Registry {
        zorgaanbieders: named(&table(ZORGAANBIEDERS)?, za, e)?,
        oauthclients: named(&table(OAUTHCLIENTS)?, oc, e)?,
        whitelist: hosts,
        gegevensdiensten: all(&table(GEGEVENSDIENSTEN)?, e)?,
        livegangen: all(&table(LIVEGANGEN)?, e)?,
    };
    reg.canonicalize();
    Ok(reg)
}
