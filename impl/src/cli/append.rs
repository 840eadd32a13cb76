//! `leasehold append`: input lines read on a thread of their own, handed
//! through a bounded queue to concurrent appenders (a window of them on
//! each worker's client), with a progress bar and, on request, where each
//! record landed. A file of its own for that pipeline: its stopping rules
//! (an error, a closed stdout) are the subtle part of the CLI.

use super::connect_with_window;
use crate::{AppendArgs, BoxError};
use std::io::{BufRead, Write};

/// Records buffered between the input reader and the appenders.
const APPEND_QUEUE_RECORDS_MAX: usize = 4096;

/// Bytes of records read but not yet appended (queued or in flight): the
/// record count alone let 4,096 records of 1 MiB, 4 GiB, pile up ahead of
/// a cluster slower than the disk they are read from. A record larger than
/// this still goes, alone.
const APPEND_QUEUE_BYTES_MAX: usize = 64 << 20;

/// `leasehold append`.
pub(crate) async fn append(a: AppendArgs) -> Result<(), BoxError> {
    if a.workers == 0 {
        return Err("--workers must be at least 1".into());
    }
    if a.window == 0 {
        return Err("--window must be at least 1".into());
    }
    let mut clients = Vec::new();
    for w in 0..a.workers {
        clients.push(connect_with_window(&a.client, w, a.window).await?);
    }
    clients[0].create(&a.path).await?;
    let total_bytes: Option<u64> = if a.files.is_empty() {
        None
    } else {
        let mut sum = 0;
        for f in &a.files {
            sum += std::fs::metadata(f)
                .map_err(|e| format!("{}: {e}", f.display()))?
                .len();
        }
        Some(sum)
    };
    let bar = match total_bytes {
        Some(n) => indicatif::ProgressBar::new(n).with_style(
            indicatif::ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg} ({eta})")
                .expect("valid template"),
        ),
        None => indicatif::ProgressBar::new_spinner().with_style(
            indicatif::ProgressStyle::with_template("{spinner} {pos} records {per_sec}")
                .expect("valid template"),
        ),
    };
    // Lines are read on a thread of their own (stdin is blocking) and handed
    // to the appenders through a bounded queue, so input of any size runs in
    // bounded memory.
    type Queued = (u64, Vec<u8>, tokio::sync::OwnedSemaphorePermit);
    let (tx, rx) = tokio::sync::mpsc::channel::<Queued>(APPEND_QUEUE_RECORDS_MAX);
    let queued_bytes = std::sync::Arc::new(tokio::sync::Semaphore::new(APPEND_QUEUE_BYTES_MAX));
    let runtime = tokio::runtime::Handle::current();
    let files = a.files.clone();
    let reader = std::thread::spawn(move || -> Result<(), String> {
        let mut line_no = 0u64;
        let mut feed = |input: &mut dyn BufRead, name: &str| -> Result<bool, String> {
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = input
                    .read_until(b'\n', &mut line)
                    .map_err(|e| format!("{name}: {e}"))?;
                if n == 0 {
                    return Ok(true);
                }
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                line_no += 1;
                // Hand the line over and read the next into a buffer of
                // the same size: a copy of each record costs as much as
                // reading it (a 1 MiB record's pages faulted in twice).
                let next = Vec::with_capacity(line.len() + 1);
                let bytes = line.len().clamp(1, APPEND_QUEUE_BYTES_MAX) as u32;
                let Ok(room) = runtime.block_on(queued_bytes.clone().acquire_many_owned(bytes))
                else {
                    return Ok(false);
                };
                let queued = (line_no, std::mem::replace(&mut line, next), room);
                if tx.blocking_send(queued).is_err() {
                    return Ok(false); // the appenders stopped on an error
                }
            }
        };
        if files.is_empty() {
            feed(&mut std::io::stdin().lock(), "stdin")?;
        } else {
            for f in &files {
                let file = std::fs::File::open(f).map_err(|e| format!("{}: {e}", f.display()))?;
                if !feed(&mut std::io::BufReader::new(file), &f.display().to_string())? {
                    break;
                }
            }
        }
        Ok(())
    });
    let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
    // Set by the first worker that fails (or finds stdout closed), so the
    // others stop before their next record, not after the queue drains.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let print_offsets = a.print_offsets;
    let mut workers = Vec::new();
    let appenders = clients
        .iter()
        .flat_map(|client| std::iter::repeat_n(client.clone(), a.window));
    for client in appenders {
        let rx = rx.clone();
        let stop = stop.clone();
        let path = a.path.clone();
        let bar = bar.clone();
        workers.push(tokio::spawn(async move {
            // Acknowledged records are counted whatever happens next, so
            // the summary after an error is true.
            let mut appended = 0u64;
            let mut outcome = Ok(());
            loop {
                if stop.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let next = rx.lock().await.recv().await;
                // The record's room is given back once it is appended (or
                // failed): `_room` lives to the end of this iteration.
                let Some((line_no, data, _room)) = next else {
                    break;
                };
                match client.record_append_detailed(&path, &data).await {
                    Ok(at) => {
                        appended += 1;
                        if print_offsets {
                            let printed = bar.suspend(|| {
                                let mut out = std::io::stdout().lock();
                                writeln!(
                                    out,
                                    "{line_no}\t{}\t{}\t{:016x}",
                                    at.index, at.offset, at.record_id
                                )
                                .and_then(|()| out.flush())
                            });
                            if let Err(e) = printed {
                                // `| head -1` has what it wanted: stop
                                // appending, as a killed filter would.
                                stop.store(true, std::sync::atomic::Ordering::SeqCst);
                                rx.lock().await.close();
                                outcome = Err(AppendEnd::Output(e));
                                break;
                            }
                        }
                        if total_bytes.is_some() {
                            bar.inc(data.len() as u64 + 1);
                        } else {
                            bar.inc(1);
                        }
                    }
                    Err(e) => {
                        // Stop everyone: close the queue so the reader ends.
                        stop.store(true, std::sync::atomic::Ordering::SeqCst);
                        rx.lock().await.close();
                        outcome = Err(AppendEnd::Failed(format!("line {line_no}: {e}")));
                        break;
                    }
                }
            }
            (appended, outcome)
        }));
    }
    let mut appended = 0;
    let mut errors = Vec::new();
    let mut output_closed = None;
    for w in workers {
        match w.await {
            Ok((n, outcome)) => {
                appended += n;
                match outcome {
                    Ok(()) => {}
                    Err(AppendEnd::Failed(e)) => errors.push(e),
                    Err(AppendEnd::Output(e)) => output_closed = Some(e),
                }
            }
            Err(e) => errors.push(format!("appender panicked: {e}")),
        }
    }
    bar.finish_and_clear();
    for client in clients {
        client.shutdown().await;
    }
    // The reader has ended unless an appender stopped early: then it may be
    // blocked reading stdin for ever (`tail -f log | leasehold append`), so
    // it is left behind; the process exits without it.
    if errors.is_empty() && output_closed.is_none() {
        if let Ok(Err(e)) = reader.join() {
            errors.push(e);
        }
    }
    eprintln!("appended {appended} records to {}", a.path);
    match (errors.into_iter().next(), output_closed) {
        (Some(e), _) => Err(e.into()),
        (None, Some(e)) => Err(e.into()),
        (None, None) => Ok(()),
    }
}

/// Why an appender stopped before its input ended.
enum AppendEnd {
    /// A record failed: the command fails with this message.
    Failed(String),
    /// Printing an offset failed (stdout closed): see [`crate::is_broken_pipe`].
    Output(std::io::Error),
}
