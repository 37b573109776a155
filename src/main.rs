fn main() -> std::process::ExitCode {
    autod::main()
}
