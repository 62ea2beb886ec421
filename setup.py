"""Build script of the farsee_ros ament_python package (colcon) and pip/editable installs."""

from glob import glob
import os

from setuptools import find_packages, setup

package_name = 'farsee_ros'


def files(pattern):
    """Regular files matching `pattern` (empty folders install nothing)."""
    return [f for f in glob(pattern) if os.path.isfile(f)]


setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test']),
    package_data={'farsee_ros.tools': ['*.sha256']},
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', files('launch/*.launch.py')),
        ('share/' + package_name + '/config', files('config/*')),
        ('share/' + package_name + '/models', files('models/*')),
    ],
    install_requires=['setuptools'],
    # colcon test runs pytest only when the package declares it as its test requirement.
    extras_require={'test': ['pytest']},
    zip_safe=True,
    maintainer='farsee_ros maintainers',
    maintainer_email='farsee-ros@example.com',
    description='FarSee-Net real-time semantic segmentation for ROS 2',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'farsee-ros = farsee_ros.tools.cli:main',
            'segment_node = farsee_ros.ros.segment_node:main',
        ],
    },
)
