# Windows: create .venv and install emoface (same as scripts/setup.py, which does the work).
#   powershell -ExecutionPolicy Bypass -File scripts\setup.ps1
$ErrorActionPreference = "Stop"
Set-Location (Join-Path $PSScriptRoot "..")
$python = if (Get-Command py -ErrorAction SilentlyContinue) { "py" } else { "python" }
& $python scripts\setup.py @args
exit $LASTEXITCODE
