from setuptools import find_packages, setup

COMMANDS = ["vu_insmod", "vu_rmmod", "vu_lsmod", "vumount", "vuumount", "vusu",
            "vuname", "vudebug", "vuctl", "vustack"]

setup(
    name="umvu",
    version="0.1.0",
    description="partial virtual machine hypervisor in user space (VUOS lineage)",
    packages=find_packages(include=["umvu", "umvu.*"]),
    setup_requires=["cffi>=1.15"],
    install_requires=["cffi>=1.15", "greenlet>=2"],
    cffi_modules=["umvu/core/_build_tracer.py:ffibuilder",
                  "umvu/submodules/_build_ext2fs.py:ffibuilder"],
    entry_points={"console_scripts": ["umvu=umvu.cli:main"]
                  + ["%s=umvu.commands:%s" % (c, c) for c in COMMANDS]},
    python_requires=">=3.11",
    zip_safe=False,
)
