//! Rules across headers that hold for every platform: platform headers,
//! compatibility masks, the parameter-area lifecycle and VP contexts.
//! (Rules that depend on the launched platform, such as GPA overlap for
//! SEV-SNP, live in the planner.)

use std::collections::HashMap;

use super::{
    DirectiveKind, IgvmFile, MAX_PARAMETER_AREA_BYTES, MAX_TOTAL_PARAMETER_BYTES, platform_name,
};
use crate::error::{Error, Result};

pub(super) fn check(file: &IgvmFile<'_>) -> Result<()> {
    platforms(file)?;
    let declared = file.declared_mask();
    for init in &file.initializations {
        if let Some(mask) = init.kind.compatibility_mask() {
            if mask & declared == 0 {
                return Err(Error::MaskMatchesNoPlatform {
                    at: init.at,
                    mask,
                    declared,
                });
            }
        }
    }
    for d in &file.directives {
        if let Some(mask) = d.kind.compatibility_mask() {
            if mask & declared == 0 {
                return Err(Error::MaskMatchesNoPlatform {
                    at: d.at,
                    mask,
                    declared,
                });
            }
        }
    }
    parameter_areas(file)?;
    vp_contexts(file)
}

fn platforms(file: &IgvmFile<'_>) -> Result<()> {
    if file.platforms.is_empty() {
        return Err(Error::NoPlatforms);
    }
    for (i, p) in file.platforms.iter().enumerate() {
        let mask = p.header.compatibility_mask;
        if mask.count_ones() != 1 {
            return Err(Error::PlatformMaskNotOneBit { at: p.at, mask });
        }
        if p.header.platform_version != 1 {
            return Err(Error::UnsupportedPlatformVersion {
                at: p.at,
                platform: platform_name(p.header.platform_type),
                version: p.header.platform_version,
            });
        }
        if p.header.highest_vtl != 0 && p.header.highest_vtl != 2 {
            return Err(Error::InvalidHighestVtl {
                at: p.at,
                vtl: p.header.highest_vtl,
            });
        }
        for q in &file.platforms[..i] {
            if q.header.platform_type == p.header.platform_type {
                return Err(Error::DuplicatePlatformType {
                    at: p.at,
                    platform: platform_name(p.header.platform_type),
                });
            }
            if q.header.compatibility_mask == mask {
                return Err(Error::DuplicatePlatformMask { at: p.at, mask });
            }
        }
    }
    Ok(())
}

enum AreaState {
    Allocated { size: u64 },
    Inserted { by: usize },
}

fn parameter_areas(file: &IgvmFile<'_>) -> Result<()> {
    let mut areas: HashMap<u32, AreaState> = HashMap::new();
    let mut total: u64 = 0;
    for d in &file.directives {
        match &d.kind {
            DirectiveKind::ParameterArea { header, .. } => {
                let index = header.parameter_area_index;
                let size = header.number_of_bytes;
                if size == 0 || size % 4096 != 0 {
                    return Err(Error::ParameterAreaSize {
                        at: d.at,
                        index,
                        size,
                    });
                }
                if size > MAX_PARAMETER_AREA_BYTES {
                    return Err(Error::ParameterAreaTooLarge {
                        at: d.at,
                        index,
                        size,
                        limit: MAX_PARAMETER_AREA_BYTES,
                    });
                }
                total += size;
                if total > MAX_TOTAL_PARAMETER_BYTES {
                    return Err(Error::ParameterAreaTooLarge {
                        at: d.at,
                        index,
                        size: total,
                        limit: MAX_TOTAL_PARAMETER_BYTES,
                    });
                }
                if areas.contains_key(&index) {
                    return Err(Error::DuplicateParameterArea { at: d.at, index });
                }
                areas.insert(index, AreaState::Allocated { size });
            }
            DirectiveKind::Parameter { kind, header } => {
                let index = header.parameter_area_index;
                match areas.get(&index) {
                    None => return Err(Error::UnknownParameterArea { at: d.at, index }),
                    Some(AreaState::Inserted { by }) => {
                        return Err(Error::ParameterAreaAlreadyInserted {
                            at: d.at,
                            index,
                            inserted_by: *by,
                        });
                    }
                    Some(AreaState::Allocated { size }) => {
                        // Fixed-size parameters must fit now; variable ones
                        // need at least one byte here and are checked again
                        // against their real length when filled.
                        let len = kind.fixed_len().unwrap_or(1);
                        if u64::from(header.byte_offset) + len > *size {
                            return Err(Error::ParameterOutOfBounds {
                                at: d.at,
                                kind: kind.name(),
                                index,
                                byte_offset: header.byte_offset,
                                len,
                                area_size: *size,
                            });
                        }
                    }
                }
            }
            DirectiveKind::ParameterInsert(header) => {
                let index = header.parameter_area_index;
                match areas.get(&index) {
                    None => return Err(Error::UnknownParameterArea { at: d.at, index }),
                    Some(AreaState::Inserted { by }) => {
                        return Err(Error::ParameterAreaAlreadyInserted {
                            at: d.at,
                            index,
                            inserted_by: *by,
                        });
                    }
                    Some(AreaState::Allocated { .. }) => {
                        areas.insert(index, AreaState::Inserted { by: d.at.index });
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn vp_contexts(file: &IgvmFile<'_>) -> Result<()> {
    // (platform mask bit, vp_index) -> first directive index
    let mut seen: HashMap<(u32, u16), usize> = HashMap::new();
    for d in &file.directives {
        if let DirectiveKind::VpContext { header, .. } = &d.kind {
            let mask = header.compatibility_mask;
            if mask.count_ones() != 1 {
                return Err(Error::VpContextMaskNotOneBit { at: d.at, mask });
            }
            for p in &file.platforms {
                if header.compatibility_mask & p.mask() == 0 {
                    continue;
                }
                let key = (p.mask(), header.vp_index);
                if let Some(first) = seen.get(&key) {
                    return Err(Error::DuplicateVpContext {
                        at: d.at,
                        vp_index: header.vp_index,
                        first: *first,
                    });
                }
                seen.insert(key, d.at.index);
            }
        }
    }
    Ok(())
}
