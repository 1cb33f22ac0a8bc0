//! `e`: the selected input's images as PNG files, named and drawn as
//! `run --save-images` names and draws them (through the same functions in
//! [`crate::report::images`] and [`crate::attribution::images`]), so an
//! export from the UI matches a batch export of the same report.

use std::path::{Path, PathBuf};

use super::Error;
use crate::attribution::images::heatmap;
use crate::report::images::{amplified_perturbation, to_image};
use crate::report::opened::ReportData;

/// Writes input `position`'s clean image, each attack's adversarial image and
/// amplified perturbation, and each attribution map, into `dir`; returns the
/// files written.
pub fn export_input(
    data: &mut ReportData,
    position: usize,
    dir: &Path,
) -> Result<Vec<PathBuf>, Error> {
    let [c, h, w] = data.shape;
    let range = data.range;
    let Some(sample) = data.report.samples.get(position) else {
        return Err(Error::Export {
            path: dir.to_path_buf(),
            message: format!("no input at position {position}"),
        });
    };
    let index = sample.index;
    let attacks: Vec<String> = data
        .report
        .summary
        .attacks
        .iter()
        .map(|a| a.name.clone())
        .collect();
    let entries: Vec<(String, Vec<String>)> = data
        .report
        .summary
        .attributions
        .iter()
        .map(|e| {
            let on = e.attacks.iter().map(|a| a.attack.clone()).collect();
            (e.name.clone(), on)
        })
        .collect();
    std::fs::create_dir_all(dir).map_err(|e| Error::Export {
        path: dir.to_path_buf(),
        message: format!("cannot create the folder: {e}"),
    })?;
    let mut written = Vec::new();
    let mut save = |img: image::DynamicImage, name: String| -> Result<(), Error> {
        let path = dir.join(name);
        let fail = |message: String| Error::Export {
            path: path.clone(),
            message,
        };
        let mut png = std::io::Cursor::new(Vec::new());
        img.write_to(&mut png, image::ImageFormat::Png)
            .map_err(|e| fail(format!("cannot encode PNG: {e}")))?;
        // A new file rather than an overwritten one: ext4 flushes a file that
        // is truncated and rewritten on close, which made a repeated export
        // of the same input take ~90 ms instead of ~2 ms.
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(fail(format!("cannot replace the file: {e}")))
            }
            _ => {}
        }
        std::fs::write(&path, png.into_inner())
            .map_err(|e| fail(format!("cannot write PNG: {e}")))?;
        written.push(path);
        Ok(())
    };
    let clean = data.sidecar.row(crate::sidecar::CLEAN_INPUTS, position)?;
    save(
        to_image(&clean, c, h, w, range),
        format!("{index:05}_clean.png"),
    )?;
    let mut adversarial = Vec::new();
    for attack in &attacks {
        let adv = data
            .sidecar
            .row(&crate::sidecar::adversarial_inputs(attack), position)?;
        save(
            to_image(&adv, c, h, w, range),
            format!("{index:05}_{attack}_adv.png"),
        )?;
        save(
            to_image(&amplified_perturbation(&adv, &clean), c, h, w, (0.0, 1.0)),
            format!("{index:05}_{attack}_delta.png"),
        )?;
        adversarial.push((attack.clone(), adv));
    }
    // Enlarged like `--save-images` heatmaps so that small inputs stay legible.
    let scale = (112 / h.min(w).max(1)).max(1);
    for (name, on) in &entries {
        let map = data
            .sidecar
            .row(&crate::sidecar::attribution_maps(name, "clean"), position)?;
        save(
            heatmap(&map, &clean, [c, h, w], range, scale).into(),
            format!("{index:05}_attr_{name}_clean.png"),
        )?;
        for (attack, adv) in adversarial.iter().filter(|(a, _)| on.contains(a)) {
            let map = data
                .sidecar
                .row(&crate::sidecar::attribution_maps(name, attack), position)?;
            save(
                heatmap(&map, adv, [c, h, w], range, scale).into(),
                format!("{index:05}_attr_{name}_{attack}.png"),
            )?;
        }
    }
    Ok(written)
}
