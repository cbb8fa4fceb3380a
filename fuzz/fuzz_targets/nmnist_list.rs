//! N-MNIST sample lists (`train*.txt` / `test*.txt`): any bytes give the list or an error naming
//! the file. The parser reads a path, so each input goes through a file of this process.
#![no_main]
use hm2bp::datasets::nmnist::read_nmnist_list;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("hm2bp-fuzz-{}-list.txt", std::process::id()));
    std::fs::write(&path, data).expect("the temporary file is writable");
    match read_nmnist_list(&path) {
        Ok(list) => assert!(list.iter().all(|&(_, class)| class < 10)),
        Err(e) => assert!(
            e.to_string().starts_with(&path.display().to_string()),
            "{e}"
        ),
    }
});
