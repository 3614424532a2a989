"""Everything that touches the Unreal Editor. Each module imports ``unreal`` inside its functions,
so importing this package outside the editor works (the tests install a fake ``unreal``)."""
