; Inno Setup script: the Windows installer for the one-folder bundle, with a Start
; menu entry and .montage job files opening in the app. Built on Windows by
; packaging\build_bundle.py when Inno Setup's iscc is on PATH, or by hand:
;   iscc /DAppVersion=0.1.0 packaging\windows\montage-ai.iss
; Output: dist\montage-ai-VERSION-windows-x64-setup.exe. Per-user by default
; (no administrator needed); the dialog offers all users.
#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif

[Setup]
AppId={{8D3F2A1C-5B7E-4E8A-9C61-2F0B7A4D9E13}
AppName=Montage AI
AppVersion={#AppVersion}
AppPublisher=Montage AI
DefaultDirName={autopf}\Montage AI
DefaultGroupName=Montage AI
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
OutputDir=..\..\dist
OutputBaseFilename=montage-ai-{#AppVersion}-windows-x64-setup
Compression=lzma2
SolidCompression=yes
LicenseFile=..\..\LICENSE
SetupIconFile=..\..\build\icons\montage-ai.ico
UninstallDisplayIcon={app}\montage-ai.exe
ChangesAssociations=yes
WizardStyle=modern

[Tasks]
Name: desktopicon; Description: "{cm:CreateDesktopIcon}"; Flags: unchecked

[Files]
Source: "..\..\dist\montage-ai\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{autoprograms}\Montage AI"; Filename: "{app}\montage-ai.exe"
Name: "{autodesktop}\Montage AI"; Filename: "{app}\montage-ai.exe"; Tasks: desktopicon

[Registry]
; .montage job files (JSON) open in the app; HKA is per user or all users, as installed.
Root: HKA; Subkey: "Software\Classes\.montage"; ValueType: string; ValueName: ""; ValueData: "MontageAI.Job"; Flags: uninsdeletevalue
Root: HKA; Subkey: "Software\Classes\.montage\OpenWithProgids"; ValueType: string; ValueName: "MontageAI.Job"; ValueData: ""; Flags: uninsdeletevalue
Root: HKA; Subkey: "Software\Classes\MontageAI.Job"; ValueType: string; ValueName: ""; ValueData: "Montage AI job"; Flags: uninsdeletekey
Root: HKA; Subkey: "Software\Classes\MontageAI.Job\DefaultIcon"; ValueType: string; ValueName: ""; ValueData: "{app}\montage-ai.exe,0"
Root: HKA; Subkey: "Software\Classes\MontageAI.Job\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\montage-ai.exe"" ""%1"""

[Run]
Filename: "{app}\montage-ai.exe"; Description: "{cm:LaunchProgram,Montage AI}"; Flags: nowait postinstall skipifsilent
