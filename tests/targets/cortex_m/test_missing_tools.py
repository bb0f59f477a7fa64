"""A missing tool fails with a message that names the Debian package to install."""
import os
import shutil

import pytest

HELLO = "int main(void) { return 0; }\n"


@pytest.mark.parametrize("tool, package", [
    ("qemu-system-arm", "qemu-system-arm"),
    ("arm-none-eabi-gcc", "gcc-arm-none-eabi"),
    ("arm-none-eabi-nm", "binutils-arm-none-eabi"),
    ("clang", "clang"),
])
def test_require_tool_names_the_package(qemu, monkeypatch, tool, package):
    monkeypatch.setenv("PATH", "")
    with pytest.raises(qemu.ToolNotFoundError, match=f"{tool} not found: apt-get install {package}"):
        qemu.require_tool(tool)


def test_build_without_cross_compiler_names_package(qemu, monkeypatch, write_c, tmp_path):
    src = write_c("main.c", HELLO)
    monkeypatch.setenv("PATH", "")
    with pytest.raises(qemu.ToolNotFoundError, match="apt-get install gcc-arm-none-eabi"):
        qemu.build_elf([src], [], tmp_path)


def test_build_with_clang_but_no_clang_names_package(qemu, monkeypatch, write_c, tmp_path):
    gcc = qemu.require_tool("arm-none-eabi-gcc")
    only_gcc = tmp_path / "bin"
    only_gcc.mkdir()
    os.symlink(gcc, only_gcc / "arm-none-eabi-gcc")
    src = write_c("main.c", HELLO)
    monkeypatch.setenv("PATH", str(only_gcc))
    with pytest.raises(qemu.ToolNotFoundError, match="apt-get install clang"):
        qemu.build_elf([src], [], tmp_path, compiler="clang")


def test_run_without_qemu_names_package(qemu, monkeypatch, write_c, tmp_path):
    elf = qemu.build_elf([write_c("main.c", HELLO)], [], tmp_path)
    no_qemu = tmp_path / "bin"
    no_qemu.mkdir()
    for tool in ("arm-none-eabi-nm", "arm-none-eabi-size"):
        os.symlink(shutil.which(tool), no_qemu / tool)
    monkeypatch.setenv("PATH", str(no_qemu))
    with pytest.raises(qemu.ToolNotFoundError, match="apt-get install qemu-system-arm"):
        qemu.run_elf(elf)


def test_missing_plugin_header_points_to_install_script(qemu, monkeypatch, tmp_path):
    monkeypatch.setenv("TVMSE_QEMU_PLUGIN_INCLUDE", str(tmp_path))
    with pytest.raises(qemu.ToolNotFoundError, match="install_system_packages.sh"):
        qemu.plugin_header_dir()
